#!/usr/bin/env bash
# Builds what the one-node cluster needs beyond the control plane and prints the bin dir
# on its last line:
#   * installs the Debian packages in NODE_PACKAGES (lib.sh) when one is missing;
#   * kubelet, kube-controller-manager, kube-scheduler, kube-proxy from the pinned
#     k8s.io/kubernetes (tests/control-plane/build.sh --node, same cache);
#   * the sandbox image (pause/, a static Go program) as an OCI archive in NODE_CACHE.
# Only what is missing or out of date is built.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

missing=()
for pkg in "${NODE_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]} > 0)); then
  node_log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

BIN="$("$CP_HERE/build.sh" --node | tail -n1)"

mkdir -p "$NODE_CACHE"
exec 8>"$NODE_CACHE/.build.lock"
flock 8
stamp="$(cat "$NODE_HERE/pause/main.go" "$NODE_HERE/pause/go.mod" "$NODE_HERE/lib.sh" | sha256sum | cut -c1-16)"
if [[ "$(cat "$NODE_CACHE/.pause.stamp" 2>/dev/null)" != "$stamp" || ! -f "$NODE_CACHE/pause.oci.tar" ]]; then
  node_log "building the sandbox image $NODE_PAUSE_IMAGE"
  work="$(mktemp -d "$NODE_CACHE/.pause.XXXXXX")"
  trap 'buildah_in "$work" rm --all >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
  (cd "$NODE_HERE/pause" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$work/pause" .)
  ctr="$(buildah_in "$work" from scratch)"
  buildah_in "$work" copy --chmod 0755 "$ctr" "$work/pause" /pause >/dev/null
  buildah_in "$work" config --entrypoint '["/pause"]' --user 65535:65535 "$ctr"
  buildah_in "$work" commit --quiet "$ctr" "$NODE_PAUSE_IMAGE" >/dev/null
  rm -f "$NODE_CACHE/pause.oci.tar"
  buildah_in "$work" push --quiet "$NODE_PAUSE_IMAGE" "oci-archive:$NODE_CACHE/pause.oci.tar:$NODE_PAUSE_IMAGE"
  printf '%s\n' "$stamp" > "$NODE_CACHE/.pause.stamp"
fi
echo "$BIN"
