#!/usr/bin/env bash
# podman with a storage of its own, <cargo target dir>/image/podman (vfs, runc, cgroupfs, no
# events log), run like build.sh's buildah so that nothing is written to /var/lib/containers
# or /run/containers: tests/image.rs loads and runs the image with it, and so can you:
#   tests/image/podman.sh load -i target/image/qlik-automations-operator.oci.tar
#   tests/image/podman.sh images
# Arguments are podman's. Runs as root (build.sh installs podman and runc).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

img_require_root
command -v podman >/dev/null || img_die "podman is not installed (tests/image/build.sh installs it)"
img_containers_env "$(img_target_dir)/image/podman"
exec unshare --mount --propagation private -- \
  sh -c 'mount -t tmpfs -o mode=0755,size=64m qao-image-var-lib /var/lib && exec podman "$@"' sh "$@"
