#!/usr/bin/env bash
# Does a large reload stall traffic? `gateway run` serves 10 000 HTTPRoutes (ROUTES) from a
# folder; wrk sends keep-alive requests to one of them for DURATION seconds, first with no
# change, then while the routes file is rewritten (a full reload: parse, compile, router
# build) one second in, and again after each reload is applied. Prints wrk's latency
# percentiles of both phases and how many reloads were applied during the second.
# Usage: bash bench/reload_stall.sh [GATEWAY_BIN] (default: the release `gateway` example,
# built if missing). Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
source bench/common.sh
ROUTES=${ROUTES:-10000} DURATION=${DURATION:-30} THREADS=${THREADS:-1}
BIN=${1:-target/release/examples/gateway}
if [ ! -x "$BIN" ]; then cargo build -q --release -p gateway-examples --example gateway; fi
require nginx wrk python3 "$BIN"

DIR=$(mktemp -d /tmp/reload-stall.XXXX)
nginx -c "$PWD/bench/nginx-backend.conf" -p /tmp & pids+=($!)
wait_port 18081
python3 - "$DIR" "$ROUTES" <<'PY'
import sys
folder, n = sys.argv[1], int(sys.argv[2])
open(f"{folder}/gateway.yaml", "w").write("""apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: bench}
spec: {controllerName: example.com/bench}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: bench
  addresses: [{type: IPAddress, value: 127.0.0.1}]
  listeners: [{name: http, port: 18080, protocol: HTTP}]
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec: {ports: [{port: 80, targetPort: 18081}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: echo-1, namespace: default, labels: {kubernetes.io/service-name: echo}}
addressType: IPv4
ports: [{port: 18081}]
endpoints: [{addresses: ["127.0.0.1"]}]
""")
route = """---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r{i}, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [r{i}.example]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /api/v{i}}}}}]
    backendRefs: [{{name: echo, port: 80}}]
  - matches: [{{path: {{type: Exact, value: /health}}}}, {{headers: [{{name: x-version, value: "{i}"}}]}}]
    backendRefs: [{{name: echo, port: 80}}]
"""
# The last route's header value is what each reload changes (an unchanged snapshot is not
# applied again).
routes = "".join(route.format(i=i) for i in range(n))
routes += route.format(i="changed").replace('value: "changed"', 'value: "gen-0"')
open(f"{folder}/routes.yaml", "w").write(routes)
PY
"$BIN" run -c "$DIR" --threads "$THREADS" --no-access-log --no-admin >"$DIR/gateway.log" 2>&1 &
gw=$!; pids+=($gw)
for _ in $(seq 600); do
    grep -q "listening on" "$DIR/gateway.log" && break
    sleep 0.1
done
wait_port 18080
URL=http://127.0.0.1:18080/api/v7/x
wrk -t1 -c16 -d2s -H 'Host: r7.example' "$URL" >/dev/null

phase() { # label
    wrk -t1 -c16 -d"${DURATION}s" --latency -H 'Host: r7.example' "$URL" |
        awk -v label="$1" '/Requests\/sec/ { rps = $2 } $1 == "50%" { p50 = $2 } $1 == "99%" { p99 = $2 }
            /Latency/ && !max { max = $4 } /Non-2xx/ { bad = $NF }
            END { printf "%-22s req/s %s  p50 %s  p99 %s  max %s  non-2xx %s\n", label, rps, p50, p99, max, bad + 0 }'
}
applied() { grep -c "configuration reloaded" "$DIR/gateway.log" || true; }
phase "no reload"
before=$(applied)
( sleep 1; end=$((SECONDS + DURATION - 1)); i=0
  while [ "$SECONDS" -lt "$end" ]; do
    i=$((i + 1)); seen=$(applied)
    sed "s/gen-[0-9]*/gen-$i/" "$DIR/routes.yaml" > "$DIR/routes.yaml.new"
    mv "$DIR/routes.yaml.new" "$DIR/routes.yaml"
    while [ "$(applied)" = "$seen" ] && [ "$SECONDS" -lt "$end" ]; do sleep 0.05; done
  done ) &
writer=$!
phase "reloading"
during=$(( $(applied) - before ))
wait "$writer"
echo "reloads applied during the second phase: $during ($ROUTES routes each, --threads $THREADS)"
[ -n "${KEEP:-}" ] || rm -rf "$DIR"
