#!/usr/bin/env bash
# down.sh DIR — stop the node that up.sh started in DIR and undo what it changed outside
# DIR (listed in DIR/node-state), then stop the control plane (tests/control-plane/down.sh,
# which removes DIR unless QAO_CP_KEEP_DIR=1). Only processes with DIR in their command
# line are signalled; the containers are stopped through the node's own containerd.
# Idempotent.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 1 && -n "$1" ]] || { echo "usage: $0 DIR" >&2; exit 2; }
[[ -d "$1" ]] || exit 0
DIR="$(cd "$1" && pwd)"
NODE_PIDS="$DIR/node-pids"
STATE="$DIR/node-state"
C="$DIR/containerd"
CTR=(ctr --address "$C/containerd.sock" --namespace k8s.io)
BIN="$CP_BIN"

is_ours() { kill -0 "$1" 2>/dev/null && tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$DIR/"; }
stop_pid() { # TERM, up to 10 s, then KILL
  local pid="$1"
  is_ours "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  node_log "pid $pid did not stop after TERM; sending KILL"
  kill -KILL "$pid" 2>/dev/null || true
}
stop_component() { awk -v n="$1" '$1 == n { print $2 }' "$NODE_PIDS" 2>/dev/null | while read -r pid; do stop_pid "$pid"; done; }

if [[ -f "$NODE_PIDS" ]]; then
  # Nothing may start or restart a container from here on.
  for name in kubelet kube-scheduler kube-controller-manager kube-proxy; do stop_component "$name"; done

  # The containers, through containerd while it still runs; the sandboxes' network
  # namespaces are read from their specs before they go.
  netns=()
  if "${CTR[@]}" version >/dev/null 2>&1; then
    mapfile -t containers < <("${CTR[@]}" containers ls -q 2>/dev/null)
    for id in "${containers[@]}"; do
      ns="$("${CTR[@]}" containers info "$id" 2>/dev/null | python3 -c '
import json, sys
spec = json.load(sys.stdin).get("Spec") or {}
for n in (spec.get("linux") or {}).get("namespaces") or []:
    if n.get("type") == "network" and n.get("path", "").startswith("/var/run/netns/"):
        print(n["path"])' 2>/dev/null)"
      [[ -n "$ns" ]] && netns+=("$ns")
      "${CTR[@]}" tasks kill --signal SIGKILL "$id" >/dev/null 2>&1 || true
    done
    for id in "${containers[@]}"; do
      for _ in $(seq 1 50); do
        "${CTR[@]}" tasks delete "$id" >/dev/null 2>&1 && break
        "${CTR[@]}" tasks ls -q 2>/dev/null | grep -qxF "$id" || break
        sleep 0.1
      done
      "${CTR[@]}" containers delete "$id" >/dev/null 2>&1 || true
    done
  fi
  stop_component containerd
  # Shims outlive containerd by design; ours carry DIR in their command line.
  for pid in $(pgrep -f -- "$C/" 2>/dev/null); do stop_pid "$pid"; done
  for ns in "${netns[@]}"; do ip netns delete "$(basename "$ns")" 2>/dev/null || true; done
  # Any pod network namespace still attached to the bridge (a sandbox containerd lost).
  : > "$NODE_PIDS"
fi

if [[ -f "$STATE" ]]; then
  while read -r kind a b; do
    case "$kind" in
      bridge)
        for ns in $(ip -o link show master "$a" 2>/dev/null | sed -n 's/.* link-netns \([^ ]*\).*/\1/p'); do
          ip netns delete "$ns" 2>/dev/null || true
        done
        ip link delete "$a" type bridge 2>/dev/null || true ;;
      kube-proxy)
        [[ -x "$BIN/kube-proxy" ]] && "$BIN/kube-proxy" --cleanup --config="$a" >/dev/null 2>&1 || true
        # The kubelet's chains, should it have made them (makeIPTablesUtilChains is off).
        for cmd in iptables ip6tables; do
          command -v "$cmd" >/dev/null || continue
          "$cmd" -t filter -D INPUT -j KUBE-FIREWALL 2>/dev/null || true
          "$cmd" -t filter -D OUTPUT -j KUBE-FIREWALL 2>/dev/null || true
          for table_chain in filter:KUBE-FIREWALL filter:KUBE-KUBELET-CANARY nat:KUBE-KUBELET-CANARY \
                             mangle:KUBE-KUBELET-CANARY mangle:KUBE-IPTABLES-HINT; do
            "$cmd" -t "${table_chain%%:*}" -F "${table_chain#*:}" 2>/dev/null || true
            "$cmd" -t "${table_chain%%:*}" -X "${table_chain#*:}" 2>/dev/null || true
          done
        done ;;
      sysctl)
        sysctl -q -w "$a=$b" >/dev/null 2>&1 || true ;;
    esac
  done < "$STATE"
fi

# Mounts under DIR (volumes, overlay roots, shm), deepest first.
awk -v d="$DIR/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
  umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
done

if [[ -f "$STATE" ]]; then
  awk '$1 == "cgroup" { print $2 }' "$STATE" | while read -r root; do
    for hierarchy in /sys/fs/cgroup/*/; do
      [[ -d "${hierarchy%/}$root" ]] || continue
      find "${hierarchy%/}$root" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
  done
  : > "$STATE"
fi

exec "$CP_HERE/down.sh" "$DIR"
