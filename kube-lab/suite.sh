#!/usr/bin/env bash
# The Kubernetes mode proven on the lab (issue 16): what only a real API
# server can show, with the controller holding exactly the rights of
# deploy/controller/rbac.yaml.
#
#   bash kube-lab/suite.sh     # brings the lab up if needed; leaves it up
#
# 1. gateway-kube's real-cluster tests (`cargo test -p gateway-kube -- --ignored`):
#    the code under test talks to the API server as the controller's
#    ServiceAccount, the fixtures as the lab admin.
# 2. Two gateway-controller processes, one leader: the leader provisions the
#    Gateway's Service and writes status; killed with SIGKILL, the other takes
#    over and serves a route created after the kill.
# 3. kube-apiserver restarted, then etcd restarted, with requests sent through
#    the gateway all along: none may fail, and a route created after each
#    restart must serve (the watches resumed).
# Prints one line per check and "N passed, N failed"; exits non-zero on any
# failure.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
state="${KUBE_LAB_STATE:-/tmp/embedded-gateway-lab}"

kubeconfig="$(bash "$here/up.sh")"
bin="$("$here/build.sh" kubectl)"
kubectl() { "$bin/kubectl" --kubeconfig "$kubeconfig" "$@"; }
passed=0 failed=0
pass() { echo "PASS $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }

echo "suite: building gateway-controller, seed-demo and gateway-kube's tests" >&2
(cd "$root" && cargo build --locked -q -p gateway-examples --example gateway-controller --example seed-demo &&
  cargo test --locked -q -p gateway-kube --no-run 2>/dev/null)
examples="$root/target/debug/examples"

# The controller's identity: deploy/controller's ServiceAccount and RBAC as
# shipped, and a token the API server issues for it.
sa_kubeconfig="$(bash "$here/controller-kubeconfig.sh" "$kubeconfig")"
if [ "$(KUBECONFIG="$sa_kubeconfig" "$bin/kubectl" auth whoami -o jsonpath='{.status.userInfo.username}')" = \
  system:serviceaccount:gateway-system:embedded-gateway ]; then
  pass "the controller's kubeconfig is the ServiceAccount gateway-system/embedded-gateway"
else
  fail "the controller's kubeconfig is not the ServiceAccount"
fi

# 1. The crate's real-cluster tests.
if (cd "$root" && KUBECONFIG="$sa_kubeconfig" GATEWAY_TEST_ADMIN_KUBECONFIG="$kubeconfig" \
  GATEWAY_TEST_NAMESPACE=gateway-system cargo test --locked -q -p gateway-kube -- --ignored \
  >"$state/log/suite-gateway-kube.log" 2>&1); then
  pass "gateway-kube real-cluster tests ($(grep -o '[0-9]* passed' "$state/log/suite-gateway-kube.log" | awk '{n += $1} END {print n}') passed) as the ServiceAccount"
else
  fail "gateway-kube real-cluster tests: $(grep -E '^test .* FAILED|panicked' "$state/log/suite-gateway-kube.log" | head -5)"
fi

# 2. and 3.: a Gateway of the suite's own class, a backend Deployment.
ns=lab-suite
kubectl apply --server-side -f - >/dev/null <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: $ns}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: lab-suite}
spec: {controllerName: example.dev/lab-suite}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: suite, namespace: $ns}
spec:
  gatewayClassName: lab-suite
  listeners: [{name: http, protocol: HTTP, port: 80}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: $ns}
spec:
  replicas: 1
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers:
        - name: backends
          image: embedded-gateway:dev
          command: ["/usr/local/bin/seed-demo", "backends"]
          ports: [{containerPort: 5678}]
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: $ns}
spec:
  selector: {app: echo}
  ports: [{port: 80, targetPort: 5678}]
YAML
route() { # route <name>: an HTTPRoute for /<name> to the echo Service
  kubectl apply --server-side -f - >/dev/null <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: $1, namespace: $ns}
spec:
  parentRefs: [{name: suite}]
  rules: [{matches: [{path: {type: PathPrefix, value: /$1}}], backendRefs: [{name: echo, port: 80}]}]
YAML
}
route first

declare -A pids
controller() { # controller <identity> <port offset> <probe port>
  KUBECONFIG="$sa_kubeconfig" POD_NAME="$1" "$examples/gateway-controller" \
    --controller-name example.dev/lab-suite --lease-namespace gateway-system \
    --port-offset "$2" --bind-load-balancer-addresses \
    --probe-address "127.0.0.1:$3" --no-admin >"$state/log/suite-$1.log" 2>&1 &
  pids[$1]=$!
}
cleanup() {
  for p in "${pids[@]}" $(jobs -p); do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
}
trap cleanup EXIT

within() { # within <seconds> <command...>
  local seconds="$1"; shift
  for _ in $(seq 1 $((seconds * 4))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  return 1
}
holder() { kubectl get lease -n gateway-system embedded-gateway -o jsonpath='{.spec.holderIdentity}'; }
is_holder() { [ "$(holder)" = "$1" ]; }
gateway_address() { kubectl get gateway -n $ns suite -o jsonpath='{.status.addresses[0].value}'; }
serves() { # serves <port> <path>
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$(gateway_address):$1$2")" = 200 ]
}
route_accepted() {
  [ "$(kubectl get httproute -n $ns "$1" -o jsonpath='{.status.parents[0].conditions[?(@.type=="Accepted")].status}')" = True ]
}

# 2. Two controllers, one leader.
controller replica-a 20000 28101
if within 60 is_holder replica-a; then pass "replica-a leads (Lease gateway-system/embedded-gateway)"; else fail "replica-a never took the Lease (holder: $(holder))"; fi
controller replica-b 30000 28102
if within 60 serves 20080 /first && within 60 serves 30080 /first; then
  pass "both replicas serve /first on the Gateway's address $(gateway_address) (MetalLB's)"
else
  fail "the replicas do not both serve /first (address: $(gateway_address))"
fi
sleep 3
if is_holder replica-a; then pass "replica-b stays a follower while replica-a lives"; else fail "the Lease moved to $(holder) with replica-a alive"; fi
kill -9 "${pids[replica-a]}"
wait "${pids[replica-a]}" 2>/dev/null || true
unset 'pids[replica-a]'
if within 60 is_holder replica-b; then pass "replica-b takes the Lease after replica-a is killed (SIGKILL)"; else fail "replica-b never took over (holder: $(holder))"; fi
route after-failover
if within 30 route_accepted after-failover && within 30 serves 30080 /after-failover; then
  pass "a route created after the failover gets status and serves"
else
  fail "a route created after the failover: accepted=$(route_accepted after-failover && echo yes || echo no)"
fi

# A second Gateway on the same port gets an address of its own and serves there.
kubectl apply --server-side -f - >/dev/null <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: suite-2, namespace: $ns}
spec:
  gatewayClassName: lab-suite
  listeners: [{name: http, protocol: HTTP, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: second, namespace: $ns}
spec:
  parentRefs: [{name: suite-2}]
  rules: [{matches: [{path: {type: PathPrefix, value: /second}}], backendRefs: [{name: echo, port: 80}]}]
YAML
second_address() { kubectl get gateway -n $ns suite-2 -o jsonpath='{.status.addresses[0].value}'; }
second_serves() {
  local a; a="$(second_address)"
  [ -n "$a" ] && [ "$a" != "$(gateway_address)" ] &&
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$a:30080/second")" = 200 ] &&
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$(gateway_address):30080/second")" = 404 ]
}
if within 60 second_serves; then
  pass "a second Gateway on port 80 gets its own address ($(second_address)) and serves its route there only"
else
  fail "a second Gateway on port 80: address $(second_address), first's $(gateway_address)"
fi

# 3. Restarts with traffic throughout.
traffic() { # traffic <file>: one request every 50 ms until killed; one line per failure
  : >"$1"
  while true; do
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$addr:30080/first")" || true
    [ "$code" = 200 ] || echo "$(date +%T.%N) $code" >>"$1"
    echo x >>"$1.count"
    sleep 0.05
  done
}
addr="$(gateway_address)"
restart() { # restart <component>
  local pid; pid="$(cat "$state/$1.pid")"
  kill "$pid"
  # Until it is gone (kube-apiserver drains its watches first), so that
  # up.sh starts a new one.
  for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  sleep 2 # a few seconds without it
  bash "$here/up.sh" >/dev/null
}
for component in kube-apiserver etcd; do
  rm -f "$state/traffic.$component.count"
  traffic "$state/traffic.$component" &
  tpid=$!
  restart "$component"
  route "after-$component-restart"
  if within 60 route_accepted "after-$component-restart" && within 30 serves 30080 "/after-$component-restart"; then
    pass "after the $component restart the watches resume: a new route gets status and serves"
  else
    fail "after the $component restart a new route does not serve (controller log: $state/log/suite-replica-b.log)"
  fi
  kill "$tpid"; wait "$tpid" 2>/dev/null || true
  n="$(wc -l <"$state/traffic.$component.count")"; bad="$(wc -l <"$state/traffic.$component")"
  if [ "$bad" -eq 0 ] && [ "$n" -gt 20 ]; then
    pass "traffic through the $component restart: $n requests, none failed"
  else
    fail "traffic through the $component restart: $bad of $n failed ($(head -3 "$state/traffic.$component" | tr '\n' ' '))"
  fi
done

kubectl delete namespace $ns --wait=false >/dev/null
kubectl delete gatewayclass lab-suite --wait=false >/dev/null
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
