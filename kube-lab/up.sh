#!/usr/bin/env bash
# Starts the lab on 127.0.0.1 and prints a kubeconfig path: etcd,
# kube-apiserver (RBAC on, ServiceAccount tokens signed), the Gateway API
# CRDs, kube-controller-manager, kube-scheduler, kwok playing the kubelet of
# Node kwok-node-0, the pod runner running that Node's Pods in network
# namespaces, and MetalLB's controller handing Services of type LoadBalancer
# addresses from 127.0.10.0/24. Idempotent: what already runs is left alone.
#
# Environment: KUBE_LAB_STATE (default /tmp/embedded-gateway-lab),
# KUBE_LAB_BIN_DIR (where the pod runner finds programs named by
# `embedded-gateway:dev` containers; default the workspace's target/debug/examples),
# KUBE_LAB_*_PORT (see below).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
state="${KUBE_LAB_STATE:-/tmp/embedded-gateway-lab}"
bin="$("$here/build.sh")"
# shellcheck source=versions.env
. "$here/versions.env"
mkdir -p "$state/pki" "$state/log"
etcd_port="${KUBE_LAB_ETCD_PORT:-23791}"
etcd_peer_port="${KUBE_LAB_ETCD_PEER_PORT:-23801}"
api_port="${KUBE_LAB_API_PORT:-26443}"
kcm_port="${KUBE_LAB_KCM_PORT:-26257}"
scheduler_port="${KUBE_LAB_SCHEDULER_PORT:-26259}"
metallb_port="${KUBE_LAB_METALLB_PORT:-27472}"
programs="${KUBE_LAB_BIN_DIR:-$(cd "$here/.." && pwd)/target/debug/examples}"
# Pod addresses: the Node's podCIDR; 10.244.0.1 is the host side of every
# Pod's veth (and the Node's address). Service ClusterIPs: 10.96.0.0/16
# (nothing routes them: the gateway reaches Pods through EndpointSlices).
pod_cidr=10.244.1.0/24
host_ip=10.244.0.1
lb_pool=127.0.10.0/24

pki="$state/pki"
if [ ! -f "$pki/ca.crt" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=kube-lab-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n' > "$pki/san.ext"
  openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -days 30 -extfile "$pki/san.ext" -out "$pki/apiserver.crt" 2>/dev/null
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  # The lab's admin: a static token in system:masters (the RBAC-limited
  # controller identity is a ServiceAccount token, issued by the server).
  echo "$(openssl rand -hex 16),lab-admin,lab-admin,system:masters" > "$pki/tokens.csv"
fi
token="$(cut -d, -f1 "$pki/tokens.csv")"

start() { # start <name> <cmd...>: runs in the background, pid in $state/<name>.pid
  local name="$1"; shift
  if [ -f "$state/$name.pid" ] && kill -0 "$(cat "$state/$name.pid")" 2>/dev/null; then return; fi
  # fd 3 (the caller's stderr, below) closed: a daemon holding it would keep a caller's
  # pipe open after up.sh exits.
  "$@" >"$state/log/$name.log" 2>&1 3>&- &
  echo $! > "$state/$name.pid"
}

start etcd "$bin/etcd" --data-dir "$state/etcd" --name lab \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
  --initial-cluster "lab=http://127.0.0.1:$etcd_peer_port"

start kube-apiserver "$bin/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$etcd_port" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" --token-auth-file "$pki/tokens.csv" \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --service-account-issuer https://kubernetes.default.svc \
  --authorization-mode RBAC --service-cluster-ip-range 10.96.0.0/16 \
  --kubelet-preferred-address-types InternalIP \
  --endpoint-reconciler-type none
# (InternalIP: the Node's host name would be looked up in the machine's DNS;
# none: the server refuses to publish a loopback address as the endpoints of
# the default/kubernetes Service, and nothing in the lab reaches it that way.)

cat > "$state/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster: {server: "https://127.0.0.1:$api_port", certificate-authority: "$pki/ca.crt"}
users:
- name: lab-admin
  user: {token: "$token"}
contexts:
- name: lab
  context: {cluster: lab, user: lab-admin}
current-context: lab
KC

kubectl() { "$bin/kubectl" --kubeconfig "$state/kubeconfig" "$@"; }
exec 3>&2 # what must be seen even where a check's own output is silenced

# wait_for <what> <seconds> <command...>: polls until the command succeeds;
# on timeout names what did not come up and where its log is.
wait_for() {
  local what="$1" seconds="$2"; shift 2
  for _ in $(seq 1 $((seconds * 2))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "kube-lab: $what did not come up in $seconds s; logs in $state/log" >&2
  exit 1
}

api_ready() {
  if ! kill -0 "$(cat "$state/kube-apiserver.pid")" 2>/dev/null; then
    echo "kube-lab: kube-apiserver exited:" >&3
    tail -3 "$state/log/kube-apiserver.log" >&3
    exit 1
  fi
  kubectl get --raw /readyz
}
wait_for kube-apiserver 60 api_ready

# The Gateway API CRDs (experimental channel, with their CEL rules) as the
# release's module carries them; MetalLB's CRDs as its module carries them.
module_dir() { # module_dir <module dir> <module@version>
  (cd "$1" && GOFLAGS=-mod=mod go mod download -json "$2" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
}
gw_dir="$(module_dir "$state" "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION")"
metallb_dir="$(module_dir "$here/metallb" "go.universe.tf/metallb@$METALLB_VERSION")"
kwok_dir="$(module_dir "$here/kwok" "sigs.k8s.io/kwok@$KWOK_VERSION")"
kubectl apply --server-side \
  $(printf -- '-f %s ' "$gw_dir"/config/crd/experimental/gateway.networking.*.yaml \
    "$metallb_dir"/config/crd/bases/metallb.io_*.yaml "$kwok_dir"/kustomize/crd/bases/kwok.x-k8s.io_logs.yaml) >/dev/null
kubectl wait --for condition=established --timeout 60s \
  crd/gateways.gateway.networking.k8s.io crd/httproutes.gateway.networking.k8s.io \
  crd/ipaddresspools.metallb.io crd/logs.kwok.x-k8s.io >/dev/null

# kube-controller-manager: Deployments → ReplicaSets → Pods, EndpointSlices
# from Service selectors, garbage collection (owned Services go with their
# Gateway), ServiceAccount tokens; and the node lifecycle controller, which
# lifts the not-ready taint from kwok's Node once it is Ready. It runs as
# the lab admin (a lab needs no per-controller identities). A grace period of
# 2 minutes for Node heartbeats (50 s by default): the suite stops
# kube-apiserver, which takes up to 30 s to drain and stop, and the lab's
# only Node must not look dead for it (its Pods would leave their
# EndpointSlices, which is not what the restart test is about).
start kube-controller-manager "$bin/kube-controller-manager" \
  --kubeconfig "$state/kubeconfig" --leader-elect=false \
  --bind-address 127.0.0.1 --secure-port "$kcm_port" \
  --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
  --use-service-account-credentials=false --allocate-node-cidrs=false \
  --node-monitor-grace-period 2m \
  --controllers '*'
start kube-scheduler "$bin/kube-scheduler" \
  --kubeconfig "$state/kubeconfig" --leader-elect=false \
  --bind-address 127.0.0.1 --secure-port "$scheduler_port"

# The fake Node. kwok gives its Pods addresses from its podCIDR.
kubectl apply --server-side -f - >/dev/null <<NODE
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations: {kwok.x-k8s.io/node: fake}
  labels: {kubernetes.io/hostname: kwok-node-0, kubernetes.io/os: linux, type: kwok}
spec:
  podCIDR: $pod_cidr
  podCIDRs: [$pod_cidr]
NODE
# kwok also serves the Node's kubelet API, for `kubectl logs`: the API server
# reaches it at the Node's address, which the host holds on lo (and on every
# Pod's veth), port 10250; the runner's log files are named to kwok by a Logs
# object per Pod.
lo_addresses="$(ip -o addr show dev lo)"
[[ "$lo_addresses" == *" $host_ip/32 "* ]] || ip addr add "$host_ip/32" dev lo
start kwok "$bin/kwok" --kubeconfig "$state/kubeconfig" --config "$here/kwok-stages.yaml" \
  --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake --enable-crds Logs \
  --node-ip "$host_ip" --node-port 10250 --cidr "$pod_cidr" --server-address "$host_ip:10250"
start podrunner "$bin/podrunner" --kubeconfig "$state/kubeconfig" --node kwok-node-0 \
  --state "$state/pods" --host-ip "$host_ip" \
  --image "echo-basic=$bin/echo-basic" --image "coredns=$bin/labdns" \
  --image "embedded-gateway=command:$programs"

# MetalLB: the controller alone (no speaker: on one machine every address of
# 127.0.0.0/8 is local, the gateway binds what it is given).
kubectl create namespace metallb-system --dry-run=client -o yaml | kubectl apply --server-side -f - >/dev/null
KUBECONFIG="$state/kubeconfig" start metallb-controller "$bin/metallb-controller" \
  -namespace metallb-system -webhook-mode disabled -disable-cert-rotation -port "$metallb_port"
kubectl apply --server-side -f - >/dev/null <<POOL
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lab, namespace: metallb-system}
spec:
  addresses: [$lb_pool]
  avoidBuggyIPs: true
POOL

node_ready() {
  [ "$(kubectl get node kwok-node-0 -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ] &&
    [ -z "$(kubectl get node kwok-node-0 -o jsonpath='{.spec.taints}')" ]
}
wait_for "kwok's Node (Ready, untainted)" 60 node_ready
for name in kube-controller-manager kube-scheduler kwok podrunner metallb-controller; do
  if ! kill -0 "$(cat "$state/$name.pid")" 2>/dev/null; then
    echo "kube-lab: $name exited:" >&2
    tail -5 "$state/log/$name.log" >&2
    exit 1
  fi
done
echo "$state/kubeconfig"
