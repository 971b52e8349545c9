#!/usr/bin/env bash
# Hot-reload latency: time from writing a manifest to the new configuration answering
# requests. Runs the seed demo on a temporary copy of examples/seed-demo, flips the HTTP
# redirect's status code between 301 and 302 twenty times, and after each write polls
# http://127.0.0.1:$((80+OFFSET))/http-echo every 2 ms until the new code answers.
# Not part of CI. Usage: bash bench/reload_latency.sh [--release]
set -euo pipefail
cd "$(dirname "$0")/.."
OFFSET=${OFFSET:-24000}
DIR=$(mktemp -d /tmp/reload.XXXX)
cp examples/seed-demo/*.yaml "$DIR/"
cargo build -q ${1:-} --example seed-demo
PROFILE=debug; [ "${1:-}" = "--release" ] && PROFILE=release
"${CARGO_TARGET_DIR:-target}/$PROFILE/examples/seed-demo" --config "$DIR" --port-offset "$OFFSET" \
    > "$DIR/demo.log" 2>&1 &
PID=$!
trap 'kill -INT $PID 2>/dev/null || true' EXIT
sleep 3
python3 - "$DIR" "$OFFSET" <<'PY'
import http.client, statistics, sys, time
folder, offset = sys.argv[1], int(sys.argv[2])
def status():
    try:
        c = http.client.HTTPConnection("127.0.0.1", 80 + offset, timeout=1)
        c.request("GET", "/http-echo", headers={"Host": "app.me"})
        return c.getresponse().status
    except OSError:
        return None
source = open(f"{folder}/routes.yaml").read()
samples = []
for i in range(20):
    code = 302 if i % 2 == 0 else 301
    t0 = time.monotonic()
    open(f"{folder}/routes.yaml", "w").write(source.replace("statusCode: 301", f"statusCode: {code}"))
    while status() != code and time.monotonic() - t0 < 5:
        time.sleep(0.002)
    samples.append((time.monotonic() - t0) * 1000)
    time.sleep(0.2)
print(f"write -> new config serving: median {statistics.median(samples):.1f} ms, "
      f"min {min(samples):.1f} ms, max {max(samples):.1f} ms over {len(samples)} edits")
PY
