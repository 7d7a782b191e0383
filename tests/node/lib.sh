# Shared helpers for the one-node cluster scripts (tests/node/). Sourced, not executed.
# shellcheck shell=bash
# shellcheck source=../control-plane/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../control-plane/lib.sh"
NODE_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# Built node artefacts that are not Go binaries of k8s.io/kubernetes (the pause image).
NODE_CACHE="$CP_CACHE/$K8S_VERSION/node"
# The sandbox image containerd is told to use; tests/node/build.sh builds it (pause/).
NODE_PAUSE_IMAGE="localhost/qao-pause:1"
# The Debian packages the node runs on: the runtime, its OCI runtime, the CNI plugins,
# iptables for kube-proxy, and buildah to pack the pause image.
NODE_PACKAGES=(containerd runc containernetworking-plugins iptables conntrack buildah)

node_log() { printf '[node] %s\n' "$*" >&2; }
node_die() { printf '[node] ERROR: %s\n' "$*" >&2; exit 1; }

# The machine's address the Pods reach it by (the apiserver, the emulator): the source
# address of its default route, else its first global IPv4 address.
node_ip() {
  local ip
  ip="$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n1)"
  [[ -n "$ip" ]] || ip="$(ip -4 -o addr show scope global | awk '{ split($4, a, "/"); print a[1]; exit }')"
  [[ -n "$ip" ]] || node_die "this machine has no global IPv4 address for the node"
  printf '%s\n' "$ip"
}

# buildah with its storage under DIR, so nothing is left in /var/lib/containers.
buildah_in() { # buildah_in DIR ARGS...
  local dir="$1"; shift
  buildah --root "$dir/storage" --runroot "$dir/run" --storage-driver vfs "$@"
}
