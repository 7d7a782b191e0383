# syntax=docker/dockerfile:1
# The operator image: a release build on the official Rust image, copied onto distroless
# (glibc, CA certificates, no shell) and run as the distroless "nonroot" user 65532.
#   docker build -t qlik-automations-operator:0.1.0 .

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Cache mounts keep the registry and target/ between builds; the binary is copied out of
# the cache because cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin qlik-automations-operator \
    && install -D -m 0755 target/release/qlik-automations-operator /out/qlik-automations-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/qlik-automations-operator /usr/local/bin/qlik-automations-operator
USER 65532:65532
# /metrics, /healthz and /readyz (`--listen`, default 0.0.0.0:8080).
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/qlik-automations-operator"]
CMD ["run"]
