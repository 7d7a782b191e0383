#!/usr/bin/env bash
# watchdog.sh PID DIR [DOWN] — wait until process PID is gone, then run DOWN DIR (default:
# this directory's down.sh; tests/node/down.sh for a control plane with a node).
# Started detached (setsid) by the Rust test support next to a control plane it
# owns, so the control plane is torn down even when the test process panics,
# aborts or is killed. Exits quietly if DIR disappears first (someone else ran
# down.sh).
set -uo pipefail
[[ $# -eq 2 || $# -eq 3 ]] || { echo "usage: $0 PID DIR [DOWN]" >&2; exit 2; }
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pid="$1" dir="$2" down="${3:-$HERE/down.sh}"
while kill -0 "$pid" 2>/dev/null; do
  [[ -d "$dir" ]] || exit 0
  sleep 1
done
exec "$down" "$dir"
