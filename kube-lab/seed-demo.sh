#!/usr/bin/env bash
# The seed demo on the lab: the seed's manifests applied unchanged to a real
# API server, its backends as Pods (run by the pod runner in their own network
# namespaces), gateway-controller serving the Gateway on the address MetalLB
# gives its Service, and every listener driven by real clients.
#
#   bash kube-lab/seed-demo.sh           # brings the lab up if needed; leaves it up
#   KEEP_CONTROLLER=1 bash kube-lab/seed-demo.sh   # and the controller running
#
# Prints one line per check and "N passed, N failed"; exits non-zero on any
# failure.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
shared="${SHARED_DIR:-$root/../shared}"
state="${KUBE_LAB_STATE:-/tmp/embedded-gateway-lab}"

kubeconfig="$(bash "$here/up.sh")"
bin="$("$here/build.sh" kubectl)"
kubectl() { "$bin/kubectl" --kubeconfig "$kubeconfig" "$@"; }

echo "seed-demo: building gateway-controller and seed-demo" >&2
(cd "$root" && cargo build --locked -q -p gateway-examples --example gateway-controller --example seed-demo)
examples="$root/target/debug/examples"

# What the seed's author had in the cluster besides the seed's manifests: the
# backends (Deployment + the Services of shared/seed-demo/services.yaml, with
# selectors instead of loopback EndpointSlices) and the Secret cert-manager
# made for selfsigned-tls.
kubectl apply --server-side -f "$root/deploy/seed-demo/backends.yaml" >/dev/null
kubectl apply --server-side -f "$root/examples/seed-demo/selfsigned-tls.yaml" >/dev/null
# The seed's own manifests, unchanged.
kubectl apply --server-side -f "$shared/seed-demo/gateway.yaml" -f "$shared/seed-demo/routes.yaml" >/dev/null

log="$state/log/seed-demo-controller.log"
"$examples/gateway-controller" --kubeconfig "$kubeconfig" \
  --controller-name gateway.envoyproxy.io/gatewayclass-controller \
  --lease-namespace platform --port-offset 0 --bind-load-balancer-addresses \
  --probe-address 127.0.0.1:28090 --admin-address 127.0.0.1:28091 >"$log" 2>&1 &
controller=$!
if [ -z "${KEEP_CONTROLLER:-}" ]; then
  trap 'kill $controller 2>/dev/null; wait $controller 2>/dev/null' EXIT
fi

wait_for() { # wait_for <what> <seconds> <command...>
  local what="$1" seconds="$2"; shift 2
  for _ in $(seq 1 $((seconds * 4))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$controller" 2>/dev/null; then
      echo "seed-demo: gateway-controller exited:" >&2; tail -20 "$log" >&2; exit 1
    fi
    sleep 0.25
  done
  echo "seed-demo: $what not reached in $seconds s (controller log: $log)" >&2
  kubectl get pods -A -o wide >&2 || true
  kubectl get gateway -n platform main-gateway -o yaml >&2 || true
  exit 1
}
wait_for "backends Deployment Available" 120 kubectl wait -n demo deploy/seed-demo-backends --for condition=Available --timeout 1s
programmed() {
  [ "$(kubectl get gateway -n platform main-gateway -o jsonpath='{.status.conditions[?(@.type=="Programmed")].status}')" = True ]
}
wait_for "Gateway platform/main-gateway Programmed" 120 programmed
addr="$(kubectl get gateway -n platform main-gateway -o jsonpath='{.status.addresses[0].value}')"
echo "seed-demo: Gateway platform/main-gateway is Programmed at $addr" >&2

passed=0 failed=0
check() { # check <description> <extended regex the output must match> <command...>
  local what="$1" want="$2" got; shift 2
  got="$("$@" 2>&1)" || true
  if [[ "$got" =~ $want ]]; then
    echo "PASS $what"; passed=$((passed + 1))
  else
    echo "FAIL $what: wanted \"$want\", got: $(echo "$got" | head -5)"; failed=$((failed + 1))
  fi
}

check "the address is MetalLB's, from the lab's pool 127.0.10.0/24" "^127\.0\.10\.[0-9]+$" echo "$addr"
check "http :80 redirects to https" "301 https://app.me/http-echo" \
  curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H 'Host: app.me' "http://$addr:80/http-echo"
check "https :443 HTTP/1.1 reaches the http-echo pod" "^Hello from seed-demo-backends-.*HTTP/1\.1 200$" \
  curl -sk --http1.1 --resolve "app.me:443:$addr" -w 'HTTP/%{http_version} %{http_code}' https://app.me/http-echo
check "https :443 HTTP/2 reaches the http-echo pod" "^Hello from seed-demo-backends-.*HTTP/2 200$" \
  curl -sk --http2 --resolve "app.me:443:$addr" -w 'HTTP/%{http_version} %{http_code}' https://app.me/http-echo
check "https :443 other paths are 404" "^404$" \
  curl -sk --resolve "app.me:443:$addr" -o /dev/null -w '%{http_code}' https://app.me/nothing-here
check "tcp :8080 echoes a line" "seed demo over tcp" \
  sh -c "printf 'seed demo over tcp\n' | nc -N -w 3 $addr 8080"
check "udp :8081 echoes a datagram" "seed demo over udp" \
  sh -c "printf 'seed demo over udp\n' | nc -u -w 2 $addr 8081"
check "grpc :50051 over TLS: reflection and SayHello from the pod" "helloworld\.Greeter.*\(from seed-demo-backends-" \
  "$examples/seed-demo" call --host "$addr" --port 50051
check "Gateway status lists 5 listeners, all Programmed" "^5$" sh -c \
  "\"$bin/kubectl\" --kubeconfig \"$kubeconfig\" get gateway -n platform main-gateway -o jsonpath='{range .status.listeners[*]}{.conditions[?(@.type==\"Programmed\")].status}{\"\\n\"}{end}' | grep -c True"
check "the Gateway's Service is owned by it" "^Gateway main-gateway$" sh -c \
  "\"$bin/kubectl\" --kubeconfig \"$kubeconfig\" get svc -n platform -l gateway.networking.k8s.io/gateway-name=main-gateway -o jsonpath='{.items[0].metadata.ownerReferences[0].kind} {.items[0].metadata.ownerReferences[0].name}'"
check "kubectl logs shows the backend pod's output (the pod runner's file, served by kwok)" \
  "http-echo on 0\.0\.0\.0:5678" kubectl logs -n demo deploy/seed-demo-backends

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
