#!/usr/bin/env bash
# Builds the operator's container image with buildah, without a daemon or a registry, into
#   <cargo target dir>/image/qlik-automations-operator.oci.tar
# an OCI image archive (one layer) named docker.io/library/qlik-automations-operator:<version>,
# which is what the chart's default image (repository qlik-automations-operator, tag = its
# appVersion) means to a container runtime. The layer holds the release binary
# (`cargo build --release --locked`), exactly the shared libraries `ldd` lists for it (glibc,
# libgcc_s and the dynamic loader, at the paths ldd prints), Debian's CA bundle from the
# ca-certificates package, /etc/passwd and /etc/group with the distroless "nonroot" user 65532
# and no shell, and an nsswitch.conf. User, entrypoint, command, port, environment and labels
# are the Dockerfile's (tests/image.rs checks that the two agree).
#
# The archive is rebuilt only when the binary, its libraries, the CA bundle or these scripts
# changed. Prints the archive's path on its last line; logs its size to stderr. Runs as root:
# it installs buildah, podman and runc with apt-get when missing, and keeps buildah's storage
# in <target>/image/buildah (vfs) and everything else it writes in a private mount namespace
# (see img_private in lib.sh). A cold run is the release build plus about five seconds.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Run from a test, this script inherits what cargo sets for test processes (CARGO_MANIFEST_DIR,
# CARGO_PKG_NAME, ...). ring's build script watches those, so with them set the release build
# would recompile ring and everything above it each time the caller changes (shell or test).
while IFS= read -r var; do unset "$var"; done < <(compgen -e |
  grep -E '^(CARGO_(MANIFEST_|PKG_|CRATE_NAME|BIN_|PRIMARY_PACKAGE|TARGET_TMPDIR|RUSTC_CURRENT_DIR)|OUT_DIR$)' || true)

img_require_root
img_ensure_packages
command -v cargo >/dev/null || img_die "cargo is not installed"

TARGET_DIR="$(img_target_dir)"
IMG_DIR="$TARGET_DIR/image"
mkdir -p "$IMG_DIR"

# One build at a time per target dir (several test binaries may call this at once).
exec 9>"$IMG_DIR/.build.lock"
if ! flock -n 9; then
  img_log "another build is running in $IMG_DIR; waiting for it"
  flock 9
fi

# The package's name, version, description and license, from the [package] table.
package_field() {
  sed -n '/^\[package\]/,/^\[/ s/^'"$1"' *= *"\(.*\)" *$/\1/p' "$IMG_REPO_ROOT/Cargo.toml" | head -n1
}
NAME="$(package_field name)"
VERSION="$(package_field version)"
DESCRIPTION="$(package_field description)"
LICENSE="$(package_field license)"
[[ -n "$NAME" && -n "$VERSION" ]] || img_die "cannot read the package name and version from Cargo.toml"
IMAGE="docker.io/library/$NAME:$VERSION"
ARCHIVE="$IMG_DIR/$NAME.oci.tar"
STAMP_FILE="$IMG_DIR/.$NAME.oci.tar.stamp"
SIZES_FILE="$IMG_DIR/.$NAME.oci.tar.sizes"
LAYER_TAR="$IMG_DIR/layer.tar"

start=$SECONDS
BIN="$(cd "$IMG_REPO_ROOT" &&
  nice -n 10 cargo build --release --locked --bin "$NAME" --message-format=json-render-diagnostics |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n1)"
[[ -n "$BIN" && -x "$BIN" ]] || img_die "cargo build did not report the $NAME executable"

# ldd's lines: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)", the loader as
# "/lib64/ld-linux-x86-64.so.2 (0x...)", and linux-vdso (in the kernel, no file).
LDD_OUT="$(ldd "$BIN" 2>&1 || true)"
if grep -q 'not found' <<<"$LDD_OUT"; then
  img_die "ldd cannot resolve every library of $BIN:"$'\n'"$LDD_OUT"
fi
mapfile -t LIBS < <(sed -n -E 's#^[[:space:]]*([^[:space:]]+ => )?(/[^[:space:]]+) \(0x[0-9a-f]+\)$#\2#p' <<<"$LDD_OUT")
if [[ ${#LIBS[@]} -eq 0 ]] && ! grep -qE 'statically linked|not a dynamic executable' <<<"$LDD_OUT"; then
  img_die "cannot read ldd's output for $BIN:"$'\n'"$LDD_OUT"
fi

# The bundle update-ca-certificates would write from the package alone: the host's
# /etc/ssl/certs/ca-certificates.crt may also hold local CAs (a proxy's, a sandbox's).
mapfile -t CA_FILES < <(LC_ALL=C find /usr/share/ca-certificates/mozilla -name '*.crt' | LC_ALL=C sort)
[[ ${#CA_FILES[@]} -gt 0 ]] || img_die "no certificates in /usr/share/ca-certificates/mozilla"

stamp() {
  {
    printf '%s\n' "$IMAGE" "$DESCRIPTION" "$LICENSE" "${SOURCE_DATE_EPOCH:-}"
    sha256sum "$IMG_HERE/build.sh" "$IMG_HERE/lib.sh" "$BIN"
    sha256sum "${LIBS[@]}" "${CA_FILES[@]}"
  } | sha256sum | cut -d' ' -f1
}
STAMP="$(stamp)"

report() { # report: the archive's path and sizes, from the sizes file
  local sizes
  sizes="$(cat "$SIZES_FILE" 2>/dev/null || true)"
  img_log "$1: $ARCHIVE ($IMAGE; ${sizes:-size unknown})"
}

if [[ -f "$ARCHIVE" && "$(cat "$STAMP_FILE" 2>/dev/null)" == "$STAMP" ]]; then
  report "up to date"
  echo "$ARCHIVE"
  exit 0
fi

img_log "building $IMAGE from $BIN"
img_containers_env "$IMG_DIR/buildah"
bah() { img_private buildah "$@"; }

WORKING="qao-image-build-$$"
# The storage is this script's alone: whatever is in it (a killed build's working container
# too) can go.
cleanup() {
  bah rm --all >/dev/null 2>&1 || true
  bah rmi --all --force >/dev/null 2>&1 || true
  rm -f "$ARCHIVE.tmp" "$LAYER_TAR"
}
trap cleanup EXIT
cleanup

ROOTFS="$IMG_DIR/rootfs"
rm -rf "$ROOTFS"
mkdir -p "$ROOTFS"

install -D -m 0755 "$BIN" "$ROOTFS/usr/local/bin/$NAME"
for lib in "${LIBS[@]}"; do
  # The content at ldd's path (through the host's /lib -> usr/lib and loader symlinks), as a
  # plain file at that path: the loader in PT_INTERP and the default search path find it.
  install -D -m "$(stat -L -c %a "$lib")" "$lib" "$ROOTFS$lib"
done

install -d -m 0755 "$ROOTFS/etc/ssl/certs"
cat "${CA_FILES[@]}" > "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
chmod 0644 "$ROOTFS/etc/ssl/certs/ca-certificates.crt"

# distroless's nonroot user and group; /sbin/nologin does not exist, as in distroless.
printf 'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$ROOTFS/etc/passwd"
printf 'nonroot:x:65532:\n' > "$ROOTFS/etc/group"
# Without it glibc asks DNS before /etc/hosts and stops at DNS's "no such name", so a
# Pod's hostAliases and "localhost" would not resolve.
printf 'hosts: files dns\n' > "$ROOTFS/etc/nsswitch.conf"
chmod 0644 "$ROOTFS/etc/passwd" "$ROOTFS/etc/group" "$ROOTFS/etc/nsswitch.conf"
install -d -m 0700 -o 65532 -g 65532 "$ROOTFS/home/nonroot"

# File times are set by `buildah commit --timestamp`; ownership comes from the tar headers.
tar --sort=name --numeric-owner -C "$ROOTFS" -cf "$LAYER_TAR" .
UNCOMPRESSED="$(stat -c %s "$LAYER_TAR")"


bah from --name "$WORKING" scratch >/dev/null
bah add "$WORKING" "$LAYER_TAR" / >/dev/null
bah config \
  --os linux \
  --user 65532:65532 \
  --workingdir /home/nonroot \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --entrypoint "[\"/usr/local/bin/$NAME\"]" \
  --cmd '["run"]' \
  --port 8080/tcp \
  --label "org.opencontainers.image.title=$NAME" \
  --label "org.opencontainers.image.description=$DESCRIPTION" \
  --label "org.opencontainers.image.version=$VERSION" \
  --label "org.opencontainers.image.licenses=$LICENSE" \
  --created-by "tests/image/build.sh" \
  "$WORKING"
# The binary's time unless SOURCE_DATE_EPOCH says otherwise: the same inputs give the same
# image digest. --identity-label=false: no io.buildah.version label, so the labels are the
# Dockerfile's.
EPOCH="${SOURCE_DATE_EPOCH:-$(stat -c %Y "$BIN")}"
bah commit --quiet --format oci --identity-label=false --timestamp "$EPOCH" "$WORKING" "$IMAGE" >/dev/null
bah push --quiet --format oci --compression-format gzip "$IMAGE" "oci-archive:$ARCHIVE.tmp:$IMAGE"
mv -f "$ARCHIVE.tmp" "$ARCHIVE"

COMPRESSED="$(stat -c %s "$ARCHIVE")"
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
printf '%s archive (gzip layer), %s uncompressed' "$(mib "$COMPRESSED")" "$(mib "$UNCOMPRESSED")" > "$SIZES_FILE"
printf '%s\n' "$STAMP" > "$STAMP_FILE"
rm -rf "$ROOTFS"
report "built in $((SECONDS - start))s"
echo "$ARCHIVE"
