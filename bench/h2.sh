#!/usr/bin/env bash
# HTTP/2 proxy benchmark with h2load: this gateway vs nginx, over TLS (ALPN h2) and h2c (prior
# knowledge), one HTTP/1.1 keep-alive backend.
#
# The proxy under test is pinned to core 0; the backend (nginx, one worker) and h2load to core 1.
# For each proxy, protocol and client shape (connections × concurrent streams): requests/s, mean
# latency, CPU time of the proxy process per request (utime+stime from /proc/<pid>/stat).
#
# Needs: nginx (apt-get install -y nginx-light), h2load (apt-get install -y nghttp2-client),
# openssl, a `dist` build of the example (`cargo build --profile dist -p gateway-net --example
# bench_gateway`). Not run in CI. Usage: bench/h2.sh [requests per run, default 300000]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
source bench/common.sh
REQUESTS="${1:-300000}"
TARGET="${CARGO_TARGET_DIR:-target}"
GATEWAY="$TARGET/dist/examples/bench_gateway"
SHAPES=("1 1" "16 1" "16 32")
require nginx h2load openssl taskset "$GATEWAY"

WORK=$(mktemp -d /tmp/bench-h2.XXXX)

# One self-signed certificate for both proxies.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=bench.local -addext subjectAltName=DNS:bench.local \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
sed "s|@DIR@|$WORK|g" bench/h2/nginx-proxy.conf.in >"$WORK/nginx-proxy.conf"
# The gateway: the HTTP benchmark's manifests plus an HTTPS listener (18443) and an h2c-capable
# HTTP listener (18084) with the same route.
{
    sed -e 's/listeners: \[{name: http, port: 18080, protocol: HTTP}\]/listeners: [{name: h2c, port: 18084, protocol: HTTP}, {name: https, port: 18443, protocol: HTTPS, hostname: bench.local, tls: {certificateRefs: [{name: bench-tls}]}}]/' \
        bench/http-gateway.yaml
    printf -- '---\napiVersion: v1\nkind: Secret\nmetadata: {name: bench-tls, namespace: default}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: %s\n  tls.key: %s\n' \
        "$(base64 -w0 "$WORK/cert.pem")" "$(base64 -w0 "$WORK/key.pem")"
} >"$WORK/gateway.yaml"

taskset -c 1 nginx -c "$PWD/bench/nginx-backend.conf" -p /tmp & pids+=($!)
wait_port 18081

run() { # name pid
    local name=$1 pid=$2
    for proto in tls h2c; do
        local url
        if [ "$proto" = tls ]; then url="https://bench.local:18443/"; else url="http://127.0.0.1:18084/"; fi
        # h2load resolves bench.local through /etc/hosts only; connect by address and send the
        # name as :authority and SNI instead.
        local connect=(--connect-to=127.0.0.1:18443)
        [ "$proto" = h2c ] && connect=()
        # Warm up pools and caches.
        taskset -c 1 h2load -n 20000 -c 16 -m 8 "${connect[@]}" "$url" >/dev/null 2>&1 || true
        for shape in "${SHAPES[@]}"; do
            read -r c m <<<"$shape"
            local before after out rps mean done_reqs cpu
            before=$(cpu_total "$pid")
            out=$(taskset -c 1 h2load -n "$REQUESTS" -c "$c" -m "$m" "${connect[@]}" "$url" 2>&1)
            after=$(cpu_total "$pid")
            rps=$(awk '/^finished in/ {print $4}' <<<"$out")
            done_reqs=$(awk '/^requests:/ {print $8}' <<<"$out")
            mean=$(awk '/^time for request:/ {print $6}' <<<"$out")
            cpu=$(awk -v t=$((after - before)) -v r="$done_reqs" -v hz="$TICK" 'BEGIN { if (r > 0) printf "%.1f", t / hz * 1e6 / r; else print "-" }')
            printf "%-8s %-4s %6s %12s %10s %12s\n" "$name" "$proto" "${c}x${m}" "$rps" "$mean" "$cpu"
        done
    done
}

printf "%-8s %-4s %6s %12s %10s %12s\n" proxy tls "c x m" "req/s" "mean" "cpu µs/req"

taskset -c 0 "$GATEWAY" "$WORK/gateway.yaml" >/dev/null & gw=$!; pids+=($gw)
wait_port 18443
run gateway "$gw"
kill "$gw"

taskset -c 0 nginx -c "$WORK/nginx-proxy.conf" -p /tmp & ngx=$!; pids+=($ngx)
wait_port 18443
sleep 0.5
run nginx "$(pgrep -P "$ngx" | head -1)"
kill "$ngx"
rm -rf "$WORK"
