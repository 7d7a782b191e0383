#!/usr/bin/env bash
# Fetches the Prometheus Operator's PrometheusRule and ServiceMonitor CRDs, exactly as that
# project publishes them (for tests/chart_monitoring.rs's server-side dry run), into
#   ${QAO_TOOLS_CACHE:-<repo>/target/tools}/prometheus-operator-<version>/
# and prints that directory on its last line. It holds
#   monitoring.coreos.com_prometheusrules.yaml
#   monitoring.coreos.com_servicemonitors.yaml
# copied from the module's example/prometheus-operator-crd/ (the CRDs its release bundle
# ships). The source is the Go module proxy: `go mod download` of
# github.com/prometheus-operator/prometheus-operator@<version>, checked against the Go
# checksum database and against the module hash pinned below. Idempotent: once the files
# are there it only prints the directory.
set -euo pipefail

# The Prometheus Operator release; MODULE_SUM is `go mod download -json`'s "Sum" of it.
VERSION=v0.85.0
MODULE=github.com/prometheus-operator/prometheus-operator
MODULE_SUM='h1:M5xLCLEoaW2IJfnuCwFzzpL+jSVQu3KGT84Pye+fW8s='
CRDS=(monitoring.coreos.com_prometheusrules.yaml monitoring.coreos.com_servicemonitors.yaml)
SOURCE_DIR=example/prometheus-operator-crd

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"
log() { printf '[prometheus-crds] %s\n' "$*" >&2; }
die() { printf '[prometheus-crds] ERROR: %s\n' "$*" >&2; exit 1; }

CACHE="${QAO_TOOLS_CACHE:-$REPO_ROOT/target/tools}"
OUT="$CACHE/prometheus-operator-$VERSION"

complete() {
  local f
  for f in "${CRDS[@]}"; do [[ -s "$OUT/$f" ]] || return 1; done
}

if complete; then
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null || die "go is not installed (the CRDs come from the Go module proxy)"
command -v flock >/dev/null || die "flock is not installed (util-linux)"
mkdir -p "$OUT"
# One download at a time per cache dir (several test binaries may call this at once).
exec 9>"$OUT/.lock"
flock 9
if complete; then
  echo "$OUT"
  exit 0
fi

log "downloading $MODULE@$VERSION from the Go module proxy"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# Outside any module, so nothing here is added to a go.mod.
info="$(cd "$tmp" && GOWORK=off GOFLAGS= go mod download -json "$MODULE@$VERSION")" ||
  die "go mod download $MODULE@$VERSION failed: $info"
field() { printf '%s\n' "$info" | sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}$/\1/p"; }
dir="$(field Dir)"
sum="$(field Sum)"
[[ "$sum" == "$MODULE_SUM" ]] || die "$MODULE@$VERSION has hash $sum, expected $MODULE_SUM"
[[ -d "$dir/$SOURCE_DIR" ]] || die "$dir has no $SOURCE_DIR"
for f in "${CRDS[@]}"; do
  src="$dir/$SOURCE_DIR/$f"
  [[ -s "$src" ]] || die "$MODULE@$VERSION has no $SOURCE_DIR/$f"
  grep -q "operator.prometheus.io/version: ${VERSION#v}" "$src" ||
    die "$src does not say it is version ${VERSION#v}"
  cp "$src" "$tmp/$f"
  chmod 644 "$tmp/$f"
  mv -f "$tmp/$f" "$OUT/$f"
done
log "CRDs of $MODULE@$VERSION in $OUT"
echo "$OUT"
