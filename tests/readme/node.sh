#!/usr/bin/env bash
# Runs the README's one-node cluster block ("### A one-node cluster") exactly as written: the
# node up, the image loaded, the chart installed with --wait, then down. CI runs it so the
# commands a newcomer types keep working; tests/node_e2e.rs checks the rest.
set -euo pipefail
cd "$(dirname "$0")/../.."

block="$(awk '
  /^### A one-node cluster/ { section = 1; next }
  section && /^```sh/ { inside = 1; next }
  section && inside && /^```/ { exit }
  section && inside { print }
' README.md)"
[[ -n "$block" ]] || { echo "README: no sh block under '### A one-node cluster'" >&2; exit 1; }
grep -qx 'tests/node/down.sh /tmp/node .*' <<<"$block" \
  || { echo "README: the node block no longer ends with tests/node/down.sh /tmp/node; update $0" >&2; exit 1; }

script="$(mktemp)"
trap 'rm -f "$script"' EXIT
{
  echo 'set -euo pipefail'
  echo 'trap "tests/node/down.sh /tmp/node >/dev/null 2>&1 || true" EXIT'
  # Everything but the last line (down.sh), then a check that the Pod is Ready, then down.sh.
  printf '%s\n' "$block" | sed '$d'
  echo 'out="$($QAO_KUBECTL get pods --namespace qao-system --no-headers)"'
  echo 'grep -q "1/1 *Running" <<<"$out" || { echo "the operator Pod is not Ready: $out" >&2; exit 1; }'
  printf '%s\n' "$block" | tail -n1
  echo 'trap - EXIT'
  echo '[[ ! -e /tmp/node ]] || { echo "down.sh left /tmp/node behind" >&2; exit 1; }'
  # Nor anything it changed outside /tmp/node: the bridge, iptables chains, cgroups, netns.
  echo '! ip -o link show type bridge | grep -q ": qao" || { echo "down.sh left a bridge" >&2; exit 1; }'
  echo '! iptables-save | grep -q "KUBE-" || { echo "down.sh left iptables chains" >&2; exit 1; }'
  echo '! ls -d /sys/fs/cgroup/*/qao-* >/dev/null 2>&1 || { echo "down.sh left cgroups" >&2; exit 1; }'
  echo '! ip netns list | grep -q "^cni-" || { echo "down.sh left network namespaces" >&2; exit 1; }'
} > "$script"
echo "== the README's node block, as written =="
printf '%s\n' "$block"
echo "=="
bash "$script"
echo "README node block: ok"
