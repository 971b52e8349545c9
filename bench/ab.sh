#!/usr/bin/env bash
# A/B comparison of two gateway builds: CPU time per request, alternated runs (A B A B ...),
# so that the machine's drift hits both alike. Same pinning as bench/http.sh: the proxy on
# core 0, the nginx backend and wrk on core 1. Each binary is started as
# `BIN bench/http-gateway.yaml` (a wrapper script can set environment variables).
#
# Build the two sides, e.g. from two worktrees:
#   cargo build --profile dist -p gateway-net --example bench_gateway   # in each
# Usage: bench/ab.sh BIN_A BIN_B [rounds, default 3] [seconds, default 8] [connections, default 16]
# Not run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
source bench/common.sh
A=$1 B=$2 ROUNDS=${3:-3} DURATION=${4:-8} CONNS=${5:-16}
require nginx wrk taskset "$A" "$B"

taskset -c 1 nginx -c "$PWD/bench/nginx-backend.conf" -p /tmp & pids+=($!)
wait_port 18081

one() { # binary label
    taskset -c 0 "$1" bench/http-gateway.yaml >/dev/null & local gw=$!
    wait_port 18080
    taskset -c 1 wrk -t1 -c16 -d2s http://127.0.0.1:18080/ >/dev/null
    local out u0 s0 u1 s1
    read -r u0 s0 < <(cpu_ticks "$gw")
    out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency http://127.0.0.1:18080/)
    read -r u1 s1 < <(cpu_ticks "$gw")
    kill "$gw"; wait "$gw" 2>/dev/null || true
    # User time apart: it is what a change to the gateway's own code moves, and it is less
    # disturbed than system time by how often the peers sleep.
    awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$TICK" -v label="$2" '
        /requests in/ { reqs = $1 } /Requests\/sec/ { rps = $2 } $1 == "99%" { p99 = $2 }
        END { k = 1e6 / hz / reqs; printf "%s req/s %s  p99 %s  cpu µs/req %.2f (user %.2f, system %.2f)\n", label, rps, p99, (u + s) * k, u * k, s * k }' <<<"$out"
}
for _ in $(seq "$ROUNDS"); do one "$A" A; one "$B" B; done
