#!/usr/bin/env bash
# up.sh DIR — a one-node Kubernetes cluster on this machine, for the tests that install the
# chart for real (tests/node_e2e.rs):
#   * the control plane of tests/control-plane/up.sh, serving on the machine's address too
#     (Pods reach it through the `kubernetes` Service, which kube-proxy routes);
#   * containerd (Debian's, with runc and the CNI bridge plugin), its state under DIR;
#   * kubelet, kube-proxy (iptables), kube-controller-manager and kube-scheduler from the
#     pinned k8s.io/kubernetes.
# Waits for the Node to be Ready, then leaves in DIR (besides the control plane's files):
#   node.env   shell exports: QAO_NODE_NAME, QAO_NODE_IP, QAO_NODE_CTR (a `ctr` command line
#              for the node's containerd), QAO_NODE_POD_CIDR
#   node-pids  "<name> <pid>" per node component (down.sh reads it)
#   *.log      one log per component
# Everything it changes outside DIR is listed in DIR/node-state and undone by down.sh:
# the CNI bridge, the pod network namespaces, kube-proxy's iptables chains, the cgroup
# root of the Pods, and the kernel settings the kubelet tunes.
# One node per machine: kube-proxy's chains are machine-wide.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 1 && -n "$1" ]] || node_die "usage: $0 DIR"
mkdir -p "$1"
DIR="$(cd "$1" && pwd)"
READY_TIMEOUT="${QAO_NODE_READY_TIMEOUT:-120}"

BIN="$("$NODE_HERE/build.sh" | tail -n1)"
NODE_IP="$(node_ip)"
NODE_NAME=qao-node
# A short id of DIR names what lives outside it (bridge, cgroup root).
ID="$(printf '%s' "$DIR" | sha256sum | cut -c1-8)"
BRIDGE="qao$ID"
CGROUP_ROOT="/qao-$ID"
POD_CIDR=10.244.0.0/24
NODE_PIDS="$DIR/node-pids"
STATE="$DIR/node-state"
touch "$NODE_PIDS" "$STATE"

for other in $(ip -o link show type bridge 2>/dev/null | awk -F': ' '{ print $2 }' | grep '^qao' || true); do
  [[ "$other" == "$BRIDGE" ]] || node_die "another test node runs on this machine (bridge $other); stop it with its down.sh first"
done

fail() { # fail COMPONENT MESSAGE: report with the log's tail, undo everything
  local comp="$1"; shift
  printf '[node] ERROR: %s\n' "$*" >&2
  if [[ -f "$DIR/$comp.log" ]]; then
    printf '[node] ---- last 40 lines of %s ----\n' "$DIR/$comp.log" >&2
    tail -n 40 "$DIR/$comp.log" >&2 || true
  fi
  QAO_CP_KEEP_DIR=1 "$NODE_HERE/down.sh" "$DIR" >&2 || true
  exit 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
record() { printf '%s\n' "$*" >> "$STATE"; }
record_pid() { printf '%s %s\n' "$1" "$2" >> "$NODE_PIDS"; }
start() { # start NAME CMD...: detached, own session, log in DIR/NAME.log
  local name="$1"; shift
  setsid nohup "$@" >>"$DIR/$name.log" 2>&1 </dev/null &
  record_pid "$name" "$!"
  node_log "started $name (pid $!, log: $DIR/$name.log)"
}
wait_for() { # wait_for NAME SECONDS CMD...: poll CMD until it succeeds
  local name="$1" timeout="$2" deadline pid; shift 2
  deadline=$((SECONDS + timeout))
  pid="$(awk -v n="$name" '$1 == n { print $2 }' "$NODE_PIDS" | tail -n1)"
  until "$@" >/dev/null 2>&1; do
    [[ -z "$pid" ]] || kill -0 "$pid" 2>/dev/null || fail "$name" "$name (pid $pid) exited"
    ((SECONDS < deadline)) || fail "$name" "$name was not ready within ${timeout}s"
    sleep 0.5
  done
}

[[ -s "$NODE_PIDS" ]] && node_die "$DIR already has a node (node-pids is not empty); run down.sh first"

# ---------------------------------------------------------------- control plane
QAO_CP_EXTRA_SANS="IP:$NODE_IP" \
QAO_CP_APISERVER_EXTRA_ARGS="--bind-address=0.0.0.0 --advertise-address=$NODE_IP --endpoint-reconciler-type=lease" \
  "$CP_HERE/up.sh" "$DIR"
KUBECONFIG="$DIR/kubeconfig"
KUBECTL=("$BIN/kubectl" --kubeconfig "$KUBECONFIG")
PKI="$DIR/pki"

# ---------------------------------------------------------------- kernel settings
# The kubelet sets these (protectKernelDefaults: false); down.sh puts the old values back.
for key in vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops \
           kernel.keys.root_maxkeys kernel.keys.root_maxbytes; do
  value="$(sysctl -n "$key" 2>/dev/null)" && record "sysctl $key $value"
done

# ---------------------------------------------------------------- cgroups
# Pods live under CGROUP_ROOT in every v1 hierarchy (the kubelet requires it to exist).
record "cgroup $CGROUP_ROOT"
for hierarchy in /sys/fs/cgroup/*/; do
  hierarchy="${hierarchy%/}"
  [[ "$(stat -f -c %T "$hierarchy")" == cgroupfs || "$(stat -f -c %T "$hierarchy")" == cgroup2fs ]] || continue
  mkdir -p "$hierarchy$CGROUP_ROOT"
  if [[ -f "$hierarchy/cpuset.cpus" ]]; then
    cat "$hierarchy/cpuset.cpus" > "$hierarchy$CGROUP_ROOT/cpuset.cpus"
    cat "$hierarchy/cpuset.mems" > "$hierarchy$CGROUP_ROOT/cpuset.mems"
  fi
done

# ---------------------------------------------------------------- containerd + CNI
C="$DIR/containerd"
mkdir -p "$C" "$DIR/cni/net.d" "$DIR/cni/ipam"
record "bridge $BRIDGE"
cat > "$DIR/cni/net.d/10-qao.conflist" <<CNI
{
  "cniVersion": "0.4.0",
  "name": "qao",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$DIR/cni/ipam",
        "ranges": [[{ "subnet": "$POD_CIDR" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    }
  ]
}
CNI
cat > "$C/config.toml" <<TOML
version = 2
root = "$C/root"
state = "$C/state"
[grpc]
  address = "$C/containerd.sock"
[ttrpc]
  address = "$C/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$C/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$NODE_PAUSE_IMAGE"
  disable_apparmor = true
  # No CAP_SYS_RESOURCE here: a container may not get a lower OOM score than containerd.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$DIR/cni/net.d"
TOML
CTR=(ctr --address "$C/containerd.sock" --namespace k8s.io)
start containerd containerd --config "$C/config.toml"
wait_for containerd 30 "${CTR[@]}" version
# containerd answers `version` before every plugin is serving: try the import a few times.
imported=""
for attempt in 1 2 3 4 5; do
  if out="$("${CTR[@]}" images import "$NODE_CACHE/pause.oci.tar" 2>&1)" &&
     "${CTR[@]}" images ls -q 2>/dev/null | grep -qxF "$NODE_PAUSE_IMAGE"; then
    imported=1
    break
  fi
  node_log "importing the sandbox image failed (attempt $attempt): $out"
  sleep 1
done
[[ -n "$imported" ]] || fail containerd "the sandbox image $NODE_PAUSE_IMAGE could not be imported from $NODE_CACHE/pause.oci.tar: $out"

# ---------------------------------------------------------------- controllers
KCM_PORT="$(free_port)"
start kube-controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig="$KUBECONFIG" \
  --authentication-kubeconfig="$KUBECONFIG" \
  --authorization-kubeconfig="$KUBECONFIG" \
  --bind-address=127.0.0.1 --secure-port="$KCM_PORT" \
  --cert-dir="$DIR/kcm-certs" \
  --service-account-private-key-file="$PKI/sa.key" \
  --root-ca-file="$PKI/ca.crt" \
  --cluster-name=qao \
  --leader-elect=false \
  --use-service-account-credentials=false
SCHED_PORT="$(free_port)"
start kube-scheduler "$BIN/kube-scheduler" \
  --kubeconfig="$KUBECONFIG" \
  --authentication-kubeconfig="$KUBECONFIG" \
  --authorization-kubeconfig="$KUBECONFIG" \
  --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" \
  --cert-dir="$DIR/scheduler-certs" \
  --leader-elect=false

# ---------------------------------------------------------------- kubelet
KUBELET_PORT="$(free_port)"
KUBELET_HEALTHZ_PORT="$(free_port)"
cat > "$DIR/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 (hybrid) is all this machine has; 1.35 refuses it unless told otherwise.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: $CGROUP_ROOT
containerRuntimeEndpoint: unix://$C/containerd.sock
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
  x509:
    clientCAFile: $PKI/ca.crt
authorization:
  mode: AlwaysAllow
failSwapOn: false
resolvConf: /etc/resolv.conf
# The disk is shared with everything else on the machine: evict only when it is truly full.
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 20
# kube-proxy owns the node's iptables rules; the kubelet's own chains (KUBE-FIREWALL and its
# canaries) would outlive the node.
makeIPTablesUtilChains: false
YAML
start kubelet "$BIN/kubelet" \
  --config="$DIR/kubelet.yaml" \
  --kubeconfig="$KUBECONFIG" \
  --root-dir="$DIR/kubelet" \
  --cert-dir="$DIR/kubelet/pki" \
  --hostname-override="$NODE_NAME" \
  --node-ip="$NODE_IP"

# ---------------------------------------------------------------- kube-proxy
record "kube-proxy $DIR/kube-proxy.yaml"
cat > "$DIR/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $KUBECONFIG
mode: iptables
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:$(free_port)
metricsBindAddress: 127.0.0.1:$(free_port)
iptables:
  # Leaves net.ipv4.conf.all.route_localnet alone.
  localhostNodePorts: false
conntrack:
  # Leaves the machine's conntrack table size and timeouts alone.
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
YAML
start kube-proxy "$BIN/kube-proxy" --config="$DIR/kube-proxy.yaml"

# ---------------------------------------------------------------- ready
node_ready() {
  [[ "$("${KUBECTL[@]}" get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}
wait_for kubelet "$READY_TIMEOUT" node_ready
cat > "$DIR/node.env" <<ENV
export QAO_NODE_NAME='$NODE_NAME'
export QAO_NODE_IP='$NODE_IP'
export QAO_NODE_CTR='ctr --address $C/containerd.sock --namespace k8s.io'
export QAO_NODE_POD_CIDR='$POD_CIDR'
ENV
node_log "node $NODE_NAME Ready at $NODE_IP (source $DIR/env and $DIR/node.env)"
