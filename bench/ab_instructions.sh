#!/usr/bin/env bash
# Instructions per proxied request of two gateway builds, counted by valgrind's callgrind:
# repeatable where CPU time on this VM is not (no hardware counters; user time swings by
# 20% between runs). Each binary is run twice under callgrind, once serving SHORT seconds of
# wrk traffic and once LONG seconds; (instructions of the long run - the short run) /
# (requests of the long run - the short run) takes start-up and compile out.
# Usage: bench/ab_instructions.sh BIN_A BIN_B [short, default 5] [long, default 15]
# Builds as for bench/ab.sh. Not run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
source bench/common.sh
A=$1 B=$2 SHORT=${3:-5} LONG=${4:-15}
require nginx wrk valgrind "$A" "$B"
OUT=$(mktemp -d /tmp/ab-instructions.XXXX)

nginx -c "$PWD/bench/nginx-backend.conf" -p /tmp & pids+=($!)
wait_port 18081

run() { # binary seconds -> "instructions requests"
    valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.%p" "$1" bench/http-gateway.yaml \
        >/dev/null 2>"$OUT/valgrind.log" &
    local gw=$!
    for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/18080) 2>/dev/null && break; sleep 0.1; done
    local requests
    requests=$(wrk -t1 -c16 -d"$2s" http://127.0.0.1:18080/ | awk '/requests in/ { print $1 }')
    kill "$gw"; wait "$gw" 2>/dev/null || true
    local total
    total=$(awk '/^summary:|^totals:/ { print $2; exit }' "$OUT"/cg.*)
    rm -f "$OUT"/cg.*
    echo "$total $requests"
}
for side in A B; do
    bin=$A; [ "$side" = B ] && bin=$B
    read -r i1 r1 < <(run "$bin" "$SHORT")
    read -r i2 r2 < <(run "$bin" "$LONG")
    awk -v i1="$i1" -v r1="$r1" -v i2="$i2" -v r2="$r2" -v side="$side" \
        'BEGIN { printf "%s instructions per request %.0f (%d and %d requests)\n", side, (i2 - i1) / (r2 - r1), r1, r2 }'
done
rm -rf "$OUT"
