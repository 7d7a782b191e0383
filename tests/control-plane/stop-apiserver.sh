#!/usr/bin/env bash
# stop-apiserver.sh DIR — stop only the kube-apiserver that up.sh started in
# DIR (etcd and all data stay). `up.sh DIR` starts it again, on the same port if
# that port is still free (the kubeconfig is rewritten either way).
set -uo pipefail

[[ $# -eq 1 && -n "$1" ]] || { echo "usage: $0 DIR" >&2; exit 2; }
[[ -d "$1" ]] || exit 0
DIR="$(cd "$1" && pwd)"
PIDS="$DIR/pids"
[[ -f "$PIDS" ]] || exit 0
pid="$(awk '$1 == "kube-apiserver" { print $2 }' "$PIDS" | tail -n1)"
if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
   tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$DIR/"; then
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
fi
{ grep -v '^kube-apiserver ' "$PIDS" || true; } > "$PIDS.tmp" && mv -f "$PIDS.tmp" "$PIDS"
exit 0
