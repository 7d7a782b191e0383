#!/usr/bin/env bash
# down.sh DIR — stop the control plane that up.sh started in DIR, by the pids
# recorded in DIR/pids only (TERM, wait up to 10 s, then KILL), then remove DIR.
# Idempotent: a missing DIR or already-dead processes are fine.
# QAO_CP_KEEP_DIR=1 keeps DIR (logs, certificates) and only clears DIR/pids.
set -uo pipefail

[[ $# -eq 1 && -n "$1" ]] || { echo "usage: $0 DIR" >&2; exit 2; }
[[ -d "$1" ]] || exit 0
DIR="$(cd "$1" && pwd)"
PIDS="$DIR/pids"

# Only signal a pid that still runs with DIR in its command line (pid reuse).
is_ours() { kill -0 "$1" 2>/dev/null && tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$DIR/"; }

if [[ -f "$PIDS" ]]; then
  # kube-apiserver first (it needs etcd to shut down cleanly), then etcd.
  mapfile -t pids < <(awk '$1 == "kube-apiserver" { print $2 }' "$PIDS"; awk '$1 != "kube-apiserver" { print $2 }' "$PIDS")
  for pid in "${pids[@]}"; do
    [[ "$pid" =~ ^[0-9]+$ ]] || continue
    is_ours "$pid" || continue
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "[control-plane] pid $pid did not stop after TERM; sending KILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  done
  : > "$PIDS"
fi

if [[ "${QAO_CP_KEEP_DIR:-}" != 1 ]]; then
  rm -rf -- "$DIR"
fi
exit 0
