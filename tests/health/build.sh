#!/usr/bin/env bash
# Builds this module's commands (kstatus, argo-health, promql-check) into
#   ${QAO_TOOLS_CACHE:-<repo>/target/tools}/health-<go.sum hash>/bin
# with the Go module proxy, CGO_ENABLED=0, -trimpath. A binary is rebuilt only
# when it is missing or its stamp (go version + go.mod + go.sum + this module's
# Go sources) changed. Prints the bin dir on its last line. A cold build
# (downloading the modules and compiling client-go's and Prometheus's
# dependencies) takes a few minutes on 2 cores; later runs take well under a second.
set -euo pipefail

HT_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
HT_REPO_ROOT="$(cd "$HT_HERE/../.." && pwd)"
ht_log() { printf '[health-tools] %s\n' "$*" >&2; }
ht_die() { printf '[health-tools] ERROR: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || ht_die "go is not installed (needs Go >= the go directive in $HT_HERE/go.mod)"
command -v flock >/dev/null || ht_die "flock is not installed (util-linux)"
command -v sha256sum >/dev/null || ht_die "sha256sum is not installed (coreutils)"

COMMANDS=(kstatus argo-health promql-check)
HT_CACHE="${QAO_TOOLS_CACHE:-$HT_REPO_ROOT/target/tools}"
HT_DIR="$HT_CACHE/health-$(sha256sum "$HT_HERE/go.sum" | cut -c1-12)"
HT_BIN="$HT_DIR/bin"

# Everything a binary depends on that can change without go.sum changing.
export GOWORK=off
stamp() {
  (
    cd "$HT_HERE"
    go env GOVERSION
    sha256sum go.mod go.sum
    find . -name '*.go' -not -path './testdata/*' | LC_ALL=C sort | xargs sha256sum
  ) | sha256sum | cut -d' ' -f1
}
needs() { [[ ! -x "$HT_BIN/$1" || "$(cat "$HT_BIN/.$1.stamp" 2>/dev/null)" != "$2" ]]; }
stale() {
  local name
  for name in "${COMMANDS[@]}"; do
    if needs "$name" "$1"; then printf '%s\n' "$name"; fi
  done
}

STAMP="$(stamp)"
if [[ -z "$(stale "$STAMP")" ]]; then
  echo "$HT_BIN"
  exit 0
fi

mkdir -p "$HT_BIN"
# One build at a time per cache dir (several test binaries may call this at once).
exec 9>"$HT_DIR/.build.lock"
if ! flock -n 9; then
  ht_log "another build is running in $HT_DIR; waiting for it"
  flock 9
fi
mapfile -t TODO < <(stale "$STAMP")
if [[ ${#TODO[@]} -eq 0 ]]; then # built by whoever held the lock
  echo "$HT_BIN"
  exit 0
fi

# Static, path-independent, stripped; -mod=readonly (the default) and the
# committed go.sum make a fresh clone build the same thing.
export CGO_ENABLED=0
GOFLAGS="$(printf '%s' "${GOFLAGS:-}" | sed -E 's/(^|[[:space:]])-mod=[^[:space:]]*//g')"
export GOFLAGS

start=$SECONDS
ht_log "building ${TODO[*]} -> $HT_BIN (CGO_ENABLED=0; a cold build takes a few minutes)"
tmp="$(mktemp -d "$HT_BIN/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
pkgs=()
for name in "${TODO[@]}"; do pkgs+=("./cmd/$name"); done
(cd "$HT_HERE" && nice -n 10 go build -trimpath -buildvcs=false -ldflags "-s -w" -o "$tmp/" "${pkgs[@]}")
for name in "${TODO[@]}"; do
  mv -f "$tmp/$name" "$HT_BIN/$name"
  printf '%s\n' "$STAMP" > "$HT_BIN/.$name.stamp"
done
ht_log "built ${TODO[*]} in $((SECONDS - start))s"
echo "$HT_BIN"
