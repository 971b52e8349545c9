#!/usr/bin/env bash
# The upstream Gateway API conformance suite (sigs.k8s.io/gateway-api/conformance
# v1.6.1, unmodified) against gateway-controller on the lab (kube-lab/).
#
#   bash conformance/upstream/run.sh                 # the five Gateway profiles
#   RUN_TEST=HTTPRouteSimpleSameNamespace bash conformance/upstream/run.sh   # one test
#
# Brings the lab up (building what is missing), runs gateway-controller on
# the host as the ServiceAccount of deploy/controller/rbac.yaml for the
# GatewayClass `embedded-gateway` (deploy/controller/gatewayclass.yaml), each
# Gateway bound on the address MetalLB gives its Service, and runs the suite
# with every feature the README's feature table marks supported. The report
# goes to conformance/reports/v1.6.1/embedded-gateway/; the suite's log to
# $KUBE_LAB_STATE/log/conformance.log. Leaves the lab up.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
state="${KUBE_LAB_STATE:-/tmp/embedded-gateway-lab}"
lab="$root/kube-lab"

kubeconfig="$(bash "$lab/up.sh")"
bin="$("$lab/build.sh" kubectl)"
kubectl() { "$bin/kubectl" --kubeconfig "$kubeconfig" "$@"; }

echo "conformance: building gateway-controller" >&2
(cd "$root" && cargo build --locked -q -p gateway-examples --example gateway-controller)
sa_kubeconfig="$(bash "$lab/controller-kubeconfig.sh" "$kubeconfig")"
kubectl apply --server-side -f "$root/deploy/controller/gatewayclass.yaml" >/dev/null

log="$state/log/conformance-controller.log"
KUBECONFIG="$sa_kubeconfig" POD_NAME=conformance "$root/target/debug/examples/gateway-controller" \
  --lease-namespace gateway-system --port-offset 0 --bind-load-balancer-addresses \
  --probe-address 127.0.0.1:28190 --admin-address 127.0.0.1:28191 >"$log" 2>&1 &
controller=$!
trap 'kill $controller 2>/dev/null; wait $controller 2>/dev/null' EXIT

# GatewayStaticAddresses: 127.0.10.250 is in MetalLB's pool (kube-lab/up.sh),
# 127.0.11.1 is not, so no load balancer of the lab can give it.
# The features we claim: the rows of the README's feature table marked
# "supported" (the table the in-process harness checks), so that both runs
# claim the same.
features="$(sed -n '/BEGIN conformance features/,/END conformance features/p' "$root/README.md" |
  awk -F'|' '$3 ~ /^ *supported *$/ { gsub(/[ `]/, "", $2); print $2 }' | paste -sd, -)"
profiles="GATEWAY-HTTP,GATEWAY-GRPC,GATEWAY-TLS,GATEWAY-TCP,GATEWAY-UDP"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)"
reports="$root/conformance/reports/v1.6.1/embedded-gateway"
mkdir -p "$reports"
report="${REPORT:-$reports/experimental-$version-default-report.yaml}"

echo "conformance: profiles $profiles" >&2
echo "conformance: supported features $features" >&2
start=$SECONDS
set +e
(cd "$here" && KUBECONFIG="$kubeconfig" go test -v -count=1 -timeout 120m -run TestConformance . -args \
  --gateway-class=embedded-gateway \
  --conformance-profiles="$profiles" \
  --supported-features="$features" \
  --report-output="$report" \
  --organization="${CONFORMANCE_ORGANIZATION:-embedded-gateway}" \
  --project="${CONFORMANCE_PROJECT:-embedded-gateway}" \
  --url="${CONFORMANCE_URL:-https://example.invalid/embedded-gateway}" \
  --version="v$version" \
  --contact="${CONFORMANCE_CONTACT:-@embedded-gateway/maintainers}" \
  --usable-address=127.0.10.250 --unusable-address=127.0.11.1 \
  ${RUN_TEST:+--run-test="$RUN_TEST"} ) >"$state/log/conformance.log" 2>&1
status=$?
set -e
echo "conformance: the suite ran $((SECONDS - start)) s, exit $status; log $state/log/conformance.log" >&2
grep -E '^(--- FAIL|--- PASS|FAIL|ok|PASS)' "$state/log/conformance.log" | grep -v '^    ' | tail -40 >&2 || true
[ -f "$report" ] && echo "conformance: report $report" >&2
exit "$status"
