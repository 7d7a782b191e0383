#!/usr/bin/env bash
# smoke.sh — start a control plane in a temp dir, check it answers with the
# pinned version, create and read a namespace with the built kubectl, stop it,
# and check nothing is left running. Exit 0 on success.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
DIR="$(mktemp -d "${TMPDIR:-/tmp}/qao-cp-smoke.XXXXXX")"
trap '"$HERE/down.sh" "$DIR"' EXIT
# shellcheck source=versions.env
source "$HERE/versions.env"

start=$SECONDS
"$HERE/up.sh" "$DIR"
echo "smoke: up.sh took $((SECONDS - start))s"
# shellcheck disable=SC1091
source "$DIR/env"
"$QAO_KUBECTL" version
server="$("$QAO_KUBECTL" version -o json | sed -n '/"serverVersion"/,/}/s/.*"gitVersion": "\([^"]*\)".*/\1/p')"
[[ "$server" == "$K8S_VERSION" ]] || { echo "smoke: server reports '$server', expected $K8S_VERSION" >&2; exit 1; }
"$QAO_KUBECTL" create namespace smoke
"$QAO_KUBECTL" get namespace smoke
"$QAO_HELM" version --short
mapfile -t pids < <(awk '{ print $2 }' "$DIR/pids")
"$HERE/down.sh" "$DIR"
trap - EXIT
for pid in "${pids[@]}"; do
  if kill -0 "$pid" 2>/dev/null; then echo "smoke: pid $pid still running after down.sh" >&2; exit 1; fi
done
[[ ! -e "$DIR" ]] || { echo "smoke: $DIR still exists after down.sh" >&2; exit 1; }
echo "smoke: ok"
