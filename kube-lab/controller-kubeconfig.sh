#!/usr/bin/env bash
# Prints the path of a kubeconfig holding only the controller's identity:
# deploy/controller's namespace, ServiceAccount and RBAC applied as shipped,
# and a token the lab's API server issues for that ServiceAccount.
#   controller-kubeconfig.sh <admin kubeconfig>
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
state="${KUBE_LAB_STATE:-/tmp/embedded-gateway-lab}"
admin="$1"
bin="$("$here/build.sh" kubectl)"
kubectl() { "$bin/kubectl" --kubeconfig "$admin" "$@"; }
kubectl apply --server-side -f "$root/deploy/controller/namespace.yaml" -f "$root/deploy/controller/rbac.yaml" >/dev/null
token="$(kubectl create token embedded-gateway -n gateway-system --duration 6h)"
out="$state/controller.kubeconfig"
sed -e "s|user: {token: .*}|user: {token: \"$token\"}|" -e 's|lab-admin|embedded-gateway|g' "$admin" > "$out"
echo "$out"
