#!/usr/bin/env bash
# Builds kube-apiserver, kubectl (k8s.io/kubernetes@$K8S_VERSION), etcd (the
# version upstream's go.mod pins) and helm ($HELM_VERSION) into
#   ${QAO_CONTROL_PLANE_CACHE:-<repo>/target/control-plane}/<K8S_VERSION>/bin
# With --node it also builds what a one-node cluster adds (kubelet,
# kube-controller-manager, kube-scheduler, kube-proxy: tests/node/).
# Only what is missing or out of date is built. Prints the bin dir on its last
# line. A cold build takes many minutes on 2 cores; later runs take a second.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v go >/dev/null || cp_die "go is not installed (needs Go >= the go directive in go.mod)"
mkdir -p "$CP_BIN"

# One build at a time per cache dir (several test binaries may call up.sh).
exec 9>"$CP_CACHE/$K8S_VERSION/.build.lock"
if ! flock -n 9; then
  cp_log "another build is running in $CP_CACHE/$K8S_VERSION; waiting for it"
  flock 9
fi

# Regenerate go.mod when versions.env was changed without running gen-replaces.sh.
if ! grep -qE "^require k8s\.io/kubernetes ${K8S_VERSION//./\\.}\$" "$CP_HERE/go.mod" 2>/dev/null; then
  cp_log "go.mod does not require k8s.io/kubernetes $K8S_VERSION: running gen-replaces.sh (commit the result)"
  "$CP_HERE/gen-replaces.sh"
fi
ETCD_VERSION="$(sed -n -E 's#^require go\.etcd\.io/etcd/server/v3 (v[^[:space:]]+)$#\1#p' "$CP_HERE/etcd/go.mod")"
[[ -n "$ETCD_VERSION" ]] || cp_die "cannot read the etcd version from $CP_HERE/etcd/go.mod; run gen-replaces.sh"

# Go's flags for every build: static, path-independent, stripped. `-mod=readonly`
# (the default) plus the committed go.sum make a fresh clone reproducible.
export CGO_ENABLED=0
GOFLAGS_BASE="${GOFLAGS:-}"
GOFLAGS_BASE="$(printf '%s' "$GOFLAGS_BASE" | sed -E 's/(^|[[:space:]])-mod=[^[:space:]]*//g')"
export GOFLAGS="$GOFLAGS_BASE"
NICE=(nice -n 10)

# Version stamping, as upstream's hack/lib/version.sh does: the same keys for
# client-go and component-base, so /version and `kubectl version` report the
# release. The build date is the release's publication time (reproducible).
k8s_ldflags() {
  local info major minor rest date
  info="$(cd / && GOFLAGS='' go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"Info":[[:space:]]*"\(.*\)",\{0,1\}$/\1/p')"
  date="$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$info" 2>/dev/null | sed -E 's/\.[0-9]+Z$/Z/')"
  [[ -n "$date" ]] || date="1970-01-01T00:00:00Z"
  rest="${K8S_VERSION#v}"
  major="${rest%%.*}"; rest="${rest#*.}"; minor="${rest%%.*}"
  local -a kv=(
    "gitVersion=$K8S_VERSION"
    "gitMajor=$major"
    "gitMinor=$minor"
    "gitCommit=unknown"
    "gitTreeState=clean"
    "buildDate=$date"
  )
  local flags="-s -w" pkg entry
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    for entry in "${kv[@]}"; do flags+=" -X $pkg.$entry"; done
  done
  printf '%s' "$flags"
}

# needs NAME STAMP: true when $CP_BIN/NAME is missing or was built for another STAMP.
needs() { [[ ! -x "$CP_BIN/$1" || "$(cat "$CP_BIN/.$1.stamp" 2>/dev/null)" != "$2" ]]; }
done_stamp() { printf '%s\n' "$2" > "$CP_BIN/.$1.stamp"; }

timed() { # timed NAME cmd...: run, report duration
  local name="$1" start=$SECONDS; shift
  "$@"
  cp_log "built $name in $((SECONDS - start))s"
}

build_k8s() { # build_k8s NAME PKG
  local name="$1" pkg="$2" stamp="k8s.io/kubernetes@$K8S_VERSION"
  needs "$name" "$stamp" || return 0
  cp_log "building $name from $pkg@$K8S_VERSION (CGO_ENABLED=0; a cold build takes several minutes)"
  (cd "$CP_HERE" && timed "$name" "${NICE[@]}" go build -trimpath -ldflags "$(k8s_ldflags)" -o "$CP_BIN/.$name.tmp" "$pkg")
  mv -f "$CP_BIN/.$name.tmp" "$CP_BIN/$name"
  done_stamp "$name" "$stamp"
}

build_etcd() {
  local stamp="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  needs etcd "$stamp" || return 0
  cp_log "building etcd from go.etcd.io/etcd/server/v3@$ETCD_VERSION (the version k8s.io/kubernetes@$K8S_VERSION requires)"
  (cd "$CP_HERE/etcd" && timed etcd "${NICE[@]}" go build -trimpath -ldflags "-s -w" -o "$CP_BIN/.etcd.tmp" go.etcd.io/etcd/server/v3)
  mv -f "$CP_BIN/.etcd.tmp" "$CP_BIN/etcd"
  done_stamp etcd "$stamp"
}

build_helm() {
  local stamp="helm.sh/helm/v3@$HELM_VERSION"
  needs helm "$stamp" || return 0
  cp_log "building helm from helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  local tmpbin
  tmpbin="$(mktemp -d "$CP_BIN/.helm-build.XXXXXX")"
  # `go install pkg@version` ignores any go.mod: run it outside our modules.
  (cd / && GOBIN="$tmpbin" timed helm "${NICE[@]}" go install -trimpath \
      -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
      "helm.sh/helm/v3/cmd/helm@$HELM_VERSION")
  mv -f "$tmpbin/helm" "$CP_BIN/helm"
  rm -rf "$tmpbin"
  done_stamp helm "$stamp"
}

K8S_STAMP="k8s.io/kubernetes@$K8S_VERSION"
NODE_COMPONENTS=()
if [[ "${1:-}" == "--node" ]]; then
  NODE_COMPONENTS=(kubelet kube-controller-manager kube-scheduler kube-proxy)
fi
node_up_to_date() {
  local name
  for name in "${NODE_COMPONENTS[@]}"; do
    needs "$name" "$K8S_STAMP" && return 1
  done
  return 0
}
if ! needs etcd "go.etcd.io/etcd/server/v3@$ETCD_VERSION" && ! needs kube-apiserver "$K8S_STAMP" &&
   ! needs kubectl "$K8S_STAMP" && ! needs helm "helm.sh/helm/v3@$HELM_VERSION" && node_up_to_date; then
  cp_log "binaries up to date (Kubernetes $K8S_VERSION, etcd $ETCD_VERSION, helm $HELM_VERSION)"
  echo "$CP_BIN"
  exit 0
fi
total_start=$SECONDS
cp_log "Kubernetes $K8S_VERSION, etcd $ETCD_VERSION, helm $HELM_VERSION -> $CP_BIN"
build_etcd
build_k8s kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build_k8s kubectl k8s.io/kubernetes/cmd/kubectl
build_helm
for name in "${NODE_COMPONENTS[@]}"; do
  build_k8s "$name" "k8s.io/kubernetes/cmd/$name"
done
cp_log "all binaries ready in $((SECONDS - total_start))s"
echo "$CP_BIN"
