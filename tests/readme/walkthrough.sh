#!/usr/bin/env bash
# Runs the README's "Try it by hand, without a tenant" block exactly as written (the lines
# between its ```sh fence and the closing fence), then the stop commands the README gives
# after it. CI runs this so the walkthrough a newcomer types can never break silently.
set -euo pipefail
cd "$(dirname "$0")/../.."

block="$(awk '
  /^## Try it by hand/ { section = 1; next }
  section && /^```sh/ { inside = 1; next }
  section && inside && /^```/ { exit }
  section && inside { print }
' README.md)"
[[ -n "$block" ]] || { echo "README: no sh block under '## Try it by hand'" >&2; exit 1; }
grep -q 'Stop with `kill %1 %2` and `tests/control-plane/down.sh /tmp/cp`' README.md \
  || { echo "README: the walkthrough's stop line changed; update $0" >&2; exit 1; }

script="$(mktemp)"
trap 'rm -f "$script"' EXIT
{
  echo 'set -euo pipefail'
  echo 'cleanup() { kill %1 %2 2>/dev/null || true; wait 2>/dev/null || true; tests/control-plane/down.sh /tmp/cp >/dev/null 2>&1 || true; }'
  echo 'trap cleanup EXIT'
  printf '%s\n' "$block"
  # What the README says `kubectl get` shows: both kinds, Ready.
  echo 'out="$($QAO_KUBECTL get qlik)"; echo "$out"'
  echo 'sleep 3; $QAO_KUBECTL get qlikautomations -o wide'
  echo 'grep -q "nightly-reload .*True" <<<"$out" && grep -q "tenant-settings .*True" <<<"$out"'
  # The README's stop line.
  echo 'kill %1 %2'
  echo 'tests/control-plane/down.sh /tmp/cp'
  echo 'trap - EXIT'
} > "$script"
echo "== the README walkthrough, as written =="
printf '%s\n' "$block"
echo "=="
bash "$script"
echo "README walkthrough: ok"
