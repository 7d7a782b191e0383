# Shared helpers for the image scripts (build.sh, podman.sh). Sourced, not executed.
# shellcheck shell=bash

IMG_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
IMG_REPO_ROOT="$(cd "$IMG_HERE/../.." && pwd)"

img_log() { printf '[image] %s\n' "$*" >&2; }
img_die() { printf '[image] ERROR: %s\n' "$*" >&2; exit 1; }

# buildah and podman run here as root: the layer holds a file owned by 65532 (the home
# directory), and img_private below needs a mount namespace of its own.
img_require_root() {
  [[ "$(id -u)" == 0 ]] || img_die "run as root (it installs packages with apt-get when missing, and runs buildah/podman in a private mount namespace)"
}

# Installs what the scripts and tests/image.rs use, when missing (a new CI machine has
# none of it): buildah builds, podman and runc run, ca-certificates is the CA bundle's
# source, util-linux has flock and unshare.
img_ensure_packages() {
  local missing=() tool
  for tool in buildah podman runc flock unshare ldd; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  [[ -d /usr/share/ca-certificates/mozilla ]] || missing+=(ca-certificates)
  [[ ${#missing[@]} -eq 0 ]] && return 0
  command -v apt-get >/dev/null 2>&1 || img_die "missing ${missing[*]}, and there is no apt-get to install them"
  img_log "installing buildah, podman, runc, ca-certificates, util-linux (missing: ${missing[*]})"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    buildah podman runc ca-certificates util-linux libc-bin >&2
}

# The cargo target dir (CARGO_TARGET_DIR and .cargo/config.toml included).
img_target_dir() {
  local dir
  dir="$(cd "$IMG_REPO_ROOT" && cargo metadata --format-version 1 --no-deps --offline 2>/dev/null |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
  [[ -n "$dir" ]] || dir="$IMG_REPO_ROOT/target"
  printf '%s' "$dir"
}

# img_containers_env DIR: points buildah or podman at DIR for everything they keep: a vfs
# storage (no kernel overlay or fuse needed), their temporary files, and the network
# config dir they lock even when no network is used. CONTAINERS_CONF replaces the host's
# containers.conf, so a host setting cannot change what is built or run here.
img_containers_env() {
  local dir="$1"
  mkdir -p "$dir/root" "$dir/run" "$dir/tmp" "$dir/networks"
  printf '[storage]\ndriver = "vfs"\ngraphroot = "%s"\nrunroot = "%s"\n' \
    "$dir/root" "$dir/run" > "$dir/storage.conf.$$"
  mv -f "$dir/storage.conf.$$" "$dir/storage.conf"
  # runc: crun needs cgroup v2 features some hosts lack; cgroupfs: no systemd needed.
  printf '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "none"\ntmp_dir = "%s"\n[network]\nnetwork_config_dir = "%s"\n' \
    "$dir/tmp" "$dir/networks" > "$dir/containers.conf.$$"
  mv -f "$dir/containers.conf.$$" "$dir/containers.conf"
  export CONTAINERS_STORAGE_CONF="$dir/storage.conf"
  export CONTAINERS_CONF="$dir/containers.conf"
  export TMPDIR="$dir/tmp"
}

# img_private CMD...: runs CMD in a mount namespace of its own in which /var/lib is an empty
# tmpfs. containers/image keeps a blob-info cache in /var/lib/containers/cache for root, and
# neither buildah nor podman has a flag to move it; this way it is dropped with the namespace
# and nothing is left under /var/lib/containers. Nothing else there is read: storage comes from
# the private storage.conf.
img_private() {
  unshare --mount --propagation private -- \
    sh -c 'mount -t tmpfs -o mode=0755,size=64m qao-image-var-lib /var/lib && exec "$@"' sh "$@"
}
