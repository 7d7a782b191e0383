#!/usr/bin/env bash
# up.sh DIR — start a local Kubernetes control plane (etcd + kube-apiserver,
# no controller-manager, no scheduler, no nodes) on free loopback ports.
#
# Builds the binaries first if needed (build.sh). On success exits 0 with both
# processes running detached (own session, so the caller's process group can
# die without taking them along) and leaves in DIR:
#   kubeconfig  cluster-admin kubeconfig (client cert in group system:masters)
#   env         shell exports: KUBECONFIG, QAO_KUBECTL, QAO_HELM, QAO_CP_BIN, ...
#   pids        "<name> <pid>" per running component (down.sh reads it)
#   ports       the ports in use; etcd.log, kube-apiserver.log; pki/ (certs, keys)
# If a component does not become ready in time (QAO_CP_ETCD_TIMEOUT, default
# 60 s; QAO_CP_APISERVER_TIMEOUT, default 120 s) it prints the tail of its log,
# stops everything it recorded in DIR and exits non-zero.
#
# Re-running up.sh on a DIR whose components still run is a no-op; a component
# that was stopped (e.g. by stop-apiserver.sh) is started again with the same
# data, certificates and, if still free, the same port.
# Extra kube-apiserver flags: QAO_CP_APISERVER_EXTRA_ARGS (split on spaces).
# Extra subject alternative names of the serving certificate (e.g. IP:192.0.2.2, so
# Pods of tests/node/ reach it by the machine's address): QAO_CP_EXTRA_SANS, comma-separated.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 1 && -n "$1" ]] || cp_die "usage: $0 DIR"
mkdir -p "$1"
DIR="$(cd "$1" && pwd)"
ETCD_TIMEOUT="${QAO_CP_ETCD_TIMEOUT:-60}"
APISERVER_TIMEOUT="${QAO_CP_APISERVER_TIMEOUT:-120}"

BIN="$("$CP_HERE/build.sh" | tail -n1)"
[[ -x "$BIN/etcd" && -x "$BIN/kube-apiserver" ]] || cp_die "build.sh did not produce binaries in '$BIN'"

PKI="$DIR/pki"
PIDS="$DIR/pids"
PORTS="$DIR/ports"
touch "$PIDS"

# ---------------------------------------------------------------- helpers
free_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
  else
    local p
    while :; do
      p=$((20000 + RANDOM % 40000))
      ss -Htln "sport = :$p" | grep -q . || { echo "$p"; return; }
    done
  fi
}
port_free() { ! ss -Htln "sport = :$1" 2>/dev/null | grep -q .; }

recorded_pid() { awk -v n="$1" '$1 == n { print $2 }' "$PIDS" | tail -n1; }
# A recorded pid counts as ours only if that process still runs with DIR in its
# command line (guards against pid reuse).
is_ours() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null && tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$DIR/"; }
record_pid() { # record_pid NAME PID (replaces an older entry)
  { grep -v "^$1 " "$PIDS" || true; echo "$1 $2"; } > "$PIDS.tmp"
  mv -f "$PIDS.tmp" "$PIDS"
}
save_ports() {
  printf 'ETCD_CLIENT_PORT=%s\nETCD_PEER_PORT=%s\nAPISERVER_PORT=%s\n' \
    "$ETCD_CLIENT_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" > "$PORTS"
}

fail() { # fail COMPONENT MESSAGE: report, show the log tail, stop everything
  local comp="$1"; shift
  printf '[control-plane] ERROR: %s\n' "$*" >&2
  if [[ -f "$DIR/$comp.log" ]]; then
    printf '[control-plane] ---- last 40 lines of %s ----\n' "$DIR/$comp.log" >&2
    tail -n 40 "$DIR/$comp.log" >&2 || true
    printf '[control-plane] ---- end of %s ----\n' "$comp.log" >&2
  fi
  QAO_CP_KEEP_DIR=1 "$CP_HERE/down.sh" "$DIR" >&2 || true
  exit 1
}

# ---------------------------------------------------------------- certificates
gen_pki() {
  [[ -f "$PKI/ca.crt" && -f "$PKI/admin.key" && -f "$PKI/sa.key" ]] && return 0
  cp_log "generating CA, serving/admin certificates and service-account key in $PKI"
  mkdir -p "$PKI"
  local ec=(-algorithm EC -pkeyopt ec_paramgen_curve:P-256)
  (
    cd "$PKI"
    umask 077
    openssl genpkey "${ec[@]}" -out ca.key 2>/dev/null
    openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=qao-local-control-plane-ca" -out ca.crt
    cat > serving.ext <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local${QAO_CP_EXTRA_SANS:+,$QAO_CP_EXTRA_SANS}
EXT
    cat > client.ext <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
EXT
    openssl genpkey "${ec[@]}" -out serving.key 2>/dev/null
    openssl req -new -key serving.key -subj "/CN=kube-apiserver" -out serving.csr
    openssl x509 -req -in serving.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 3650 \
      -extfile serving.ext -out serving.crt 2>/dev/null
    openssl genpkey "${ec[@]}" -out admin.key 2>/dev/null
    openssl req -new -key admin.key -subj "/O=system:masters/CN=qao-admin" -out admin.csr
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 3650 \
      -extfile client.ext -out admin.crt 2>/dev/null
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null
    openssl pkey -in sa.key -pubout -out sa.pub
    rm -f ./*.csr ./*.srl
  ) || cp_die "openssl failed to generate certificates in $PKI"
}

# ---------------------------------------------------------------- etcd
etcd_healthy() { curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_CLIENT_PORT/health" 2>/dev/null | grep -q '"health":"true"'; }

start_etcd() {
  local attempt pid deadline
  for attempt in 1 2 3; do
    if [[ -z "${ETCD_CLIENT_PORT:-}" ]] || ! port_free "$ETCD_CLIENT_PORT" || ! port_free "$ETCD_PEER_PORT"; then
      ETCD_CLIENT_PORT="$(free_port)"; ETCD_PEER_PORT="$(free_port)"
      [[ "$ETCD_PEER_PORT" != "$ETCD_CLIENT_PORT" ]] || ETCD_PEER_PORT="$(free_port)"
    fi
    save_ports
    cp_log "starting etcd on 127.0.0.1:$ETCD_CLIENT_PORT (log: $DIR/etcd.log)"
    mkdir -p "$DIR/etcd-data" && chmod 700 "$DIR/etcd-data"
    setsid nohup "$BIN/etcd" \
      --name=qao \
      --data-dir="$DIR/etcd-data" \
      --listen-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" \
      --advertise-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" \
      --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
      --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
      --initial-cluster="qao=http://127.0.0.1:$ETCD_PEER_PORT" \
      --unsafe-no-fsync=true \
      --log-level=warn \
      >>"$DIR/etcd.log" 2>&1 </dev/null &
    pid=$!
    record_pid etcd "$pid"
    deadline=$((SECONDS + ETCD_TIMEOUT))
    while ((SECONDS < deadline)); do
      if etcd_healthy; then cp_log "etcd ready (pid $pid)"; return 0; fi
      if ! kill -0 "$pid" 2>/dev/null; then
        if grep -q 'address already in use' "$DIR/etcd.log" && ((attempt < 3)); then
          cp_log "etcd port was taken, retrying on other ports"; ETCD_CLIENT_PORT=""; continue 2
        fi
        fail etcd "etcd (pid $pid) exited before becoming healthy"
      fi
      sleep 0.2
    done
    fail etcd "etcd did not become healthy within ${ETCD_TIMEOUT}s"
  done
  fail etcd "could not find free ports for etcd"
}

# ---------------------------------------------------------------- kube-apiserver
curl_admin() { curl -fsS --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "https://127.0.0.1:$APISERVER_PORT$1"; }

write_kubeconfig() {
  local b64=(base64 -w0)
  umask 077
  cat > "$DIR/kubeconfig.tmp" <<KC
apiVersion: v1
kind: Config
clusters:
- name: qao-local
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $("${b64[@]}" < "$PKI/ca.crt")
users:
- name: qao-admin
  user:
    client-certificate-data: $("${b64[@]}" < "$PKI/admin.crt")
    client-key-data: $("${b64[@]}" < "$PKI/admin.key")
contexts:
- name: qao-local
  context:
    cluster: qao-local
    user: qao-admin
    namespace: default
current-context: qao-local
KC
  mv -f "$DIR/kubeconfig.tmp" "$DIR/kubeconfig"
  cat > "$DIR/env.tmp" <<ENV
export KUBECONFIG='$DIR/kubeconfig'
export QAO_KUBECTL='$BIN/kubectl'
export QAO_HELM='$BIN/helm'
export QAO_CP_BIN='$BIN'
export QAO_CP_DIR='$DIR'
export QAO_CP_SERVER='https://127.0.0.1:$APISERVER_PORT'
export QAO_CP_K8S_VERSION='$K8S_VERSION'
ENV
  mv -f "$DIR/env.tmp" "$DIR/env"
}

start_apiserver() {
  local attempt pid deadline extra=()
  # shellcheck disable=SC2206
  [[ -n "${QAO_CP_APISERVER_EXTRA_ARGS:-}" ]] && extra=(${QAO_CP_APISERVER_EXTRA_ARGS})
  for attempt in 1 2 3; do
    if [[ -z "${APISERVER_PORT:-}" ]] || ! port_free "$APISERVER_PORT"; then APISERVER_PORT="$(free_port)"; fi
    save_ports
    cp_log "starting kube-apiserver $K8S_VERSION on https://127.0.0.1:$APISERVER_PORT (log: $DIR/kube-apiserver.log)"
    setsid nohup "$BIN/kube-apiserver" \
      --etcd-servers="http://127.0.0.1:$ETCD_CLIENT_PORT" \
      --bind-address=127.0.0.1 \
      --advertise-address=127.0.0.1 \
      --secure-port="$APISERVER_PORT" \
      --cert-dir="$PKI" \
      --tls-cert-file="$PKI/serving.crt" \
      --tls-private-key-file="$PKI/serving.key" \
      --client-ca-file="$PKI/ca.crt" \
      --authorization-mode=RBAC \
      --service-account-key-file="$PKI/sa.pub" \
      --service-account-signing-key-file="$PKI/sa.key" \
      --service-account-issuer=https://kubernetes.default.svc.cluster.local \
      --endpoint-reconciler-type=none \
      --service-cluster-ip-range=10.0.0.0/24 \
      --allow-privileged=true \
      --profiling=false \
      "${extra[@]}" \
      >>"$DIR/kube-apiserver.log" 2>&1 </dev/null &
    pid=$!
    record_pid kube-apiserver "$pid"
    deadline=$((SECONDS + APISERVER_TIMEOUT))
    while ((SECONDS < deadline)); do
      # Ready = /readyz ok (all post-start hooks done, RBAC bootstrapped) and
      # the bootstrap controller has created the default namespace.
      if [[ "$(curl_admin /readyz 2>/dev/null)" == ok ]] && curl_admin /api/v1/namespaces/default >/dev/null 2>&1; then
        cp_log "kube-apiserver ready (pid $pid)"
        return 0
      fi
      if ! kill -0 "$pid" 2>/dev/null; then
        if grep -q 'address already in use' "$DIR/kube-apiserver.log" && ((attempt < 3)); then
          cp_log "apiserver port was taken, retrying on another port"; APISERVER_PORT=""; continue 2
        fi
        fail kube-apiserver "kube-apiserver (pid $pid) exited before becoming ready"
      fi
      sleep 0.25
    done
    fail kube-apiserver "kube-apiserver did not become ready within ${APISERVER_TIMEOUT}s"
  done
  fail kube-apiserver "could not find a free port for kube-apiserver"
}

# ---------------------------------------------------------------- main
start=$SECONDS
ETCD_CLIENT_PORT="" ETCD_PEER_PORT="" APISERVER_PORT=""
# shellcheck disable=SC1090
[[ -f "$PORTS" ]] && source "$PORTS"
gen_pki

if is_ours "$(recorded_pid etcd)" && etcd_healthy; then
  cp_log "etcd already running (pid $(recorded_pid etcd))"
else
  # etcd gone means the apiserver cannot be trusted either: restart both.
  if is_ours "$(recorded_pid kube-apiserver)"; then
    kill "$(recorded_pid kube-apiserver)" 2>/dev/null || true
  fi
  start_etcd
fi
if is_ours "$(recorded_pid kube-apiserver)" && [[ "$(curl_admin /readyz 2>/dev/null)" == ok ]]; then
  cp_log "kube-apiserver already running (pid $(recorded_pid kube-apiserver))"
else
  if is_ours "$(recorded_pid kube-apiserver)"; then
    kill "$(recorded_pid kube-apiserver)" 2>/dev/null || true
    sleep 1
  fi
  start_apiserver
fi
write_kubeconfig
cp_log "control plane up in $((SECONDS - start))s: KUBECONFIG=$DIR/kubeconfig (source $DIR/env)"
