# syntax=docker/dockerfile:1
# The operator image: a release build on the official Rust image, copied onto distroless
# (glibc, CA certificates, /etc/passwd with the "nonroot" user 65532, no shell) and run as 65532.
#   docker build -t qlik-automations-operator:0.1.0 .
# tests/image/build.sh builds the same image without Docker (buildah, an OCI archive), and
# tests/image.rs checks that the final stage below and that image agree: user, working
# directory, environment, entrypoint, command, port, labels and the binary's path.

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
# The version is Cargo.toml's (tests/image.rs fails when they differ).
LABEL org.opencontainers.image.title="qlik-automations-operator" \
      org.opencontainers.image.description="A Kubernetes operator that makes Qlik Cloud automations declarative" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"
# distroless sets these already; stated so that the buildah image can be checked against them.
# SSL_CERT_FILE names the bundle rustls-native-certs loads (the Qlik tenant's roots).
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
WORKDIR /home/nonroot
USER 65532:65532
# /metrics, /healthz and /readyz (`--listen`, default 0.0.0.0:8080).
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/qlik-automations-operator"]
CMD ["run"]
