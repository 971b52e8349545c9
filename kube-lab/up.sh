#!/usr/bin/env bash
# Starts the lab's control plane on 127.0.0.1 and prints a kubeconfig path.
# Today: etcd, kube-apiserver (RBAC on, ServiceAccount tokens signed) and the
# Gateway API CRDs; no controller-manager, scheduler, kwok or pod runner runs
# yet: see kube-lab/README.md, "State".
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
state="${KUBE_LAB_STATE:-/tmp/embedded-gateway-lab}"
bin="$("$here/build.sh" etcd kube-apiserver kubectl)"
# shellcheck source=versions.env
. "$here/versions.env"
mkdir -p "$state/pki" "$state/log"
etcd_port="${KUBE_LAB_ETCD_PORT:-23791}"
etcd_peer_port="${KUBE_LAB_ETCD_PEER_PORT:-23801}"
api_port="${KUBE_LAB_API_PORT:-26443}"

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
  "$@" >"$state/log/$name.log" 2>&1 &
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
  --endpoint-reconciler-type none
# (none: the server refuses to publish a loopback address as the endpoints of
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

# The Gateway API CRDs (experimental channel, with their CEL rules) as the
# release's module carries them.
install_crds() {
  local dir
  dir="$(cd "$state" && GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" \
    | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
  "$bin/kubectl" --kubeconfig "$state/kubeconfig" apply --server-side \
    $(printf -- '-f %s ' "$dir"/config/crd/experimental/gateway.networking.*.yaml) >/dev/null
  "$bin/kubectl" --kubeconfig "$state/kubeconfig" wait --for condition=established --timeout 60s \
    crd/gateways.gateway.networking.k8s.io crd/httproutes.gateway.networking.k8s.io >/dev/null
}

for _ in $(seq 1 120); do
  if "$bin/kubectl" --kubeconfig "$state/kubeconfig" get --raw /readyz >/dev/null 2>&1; then
    install_crds
    echo "$state/kubeconfig"
    exit 0
  fi
  if ! kill -0 "$(cat "$state/kube-apiserver.pid")" 2>/dev/null; then
    echo "kube-lab: kube-apiserver exited:" >&2
    tail -3 "$state/log/kube-apiserver.log" >&2
    exit 1
  fi
  sleep 0.5
done
echo "kube-lab: the API server did not become ready in 60 s; logs in $state/log" >&2
exit 1
