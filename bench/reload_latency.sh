#!/usr/bin/env bash
# Hot-reload latency: time from writing a manifest to the new configuration answering
# requests. Runs the seed demo on a temporary copy of examples/seed-demo, flips the HTTP
# redirect's status code between 301 and 302 twenty times, and after each write polls
# http://127.0.0.1:$((80+OFFSET))/http-echo every 2 ms until the new code answers.
#
# With ROUTES=N (say 2000 or 10000) it measures at scale instead: N HTTPRoutes (hosts
# bulk-<i>.example on the seed Gateway's HTTP listener) in one file, then NEW=60 route files
# written one at a time (host new-<k>.example → http-echo), each polled with fresh
# connections from the write until it answers 200; it reports p50/p99 of write → first 200 and
# every status other than 404 seen before it.
# BIN=path runs that seed-demo binary instead of building one.
# Not part of CI. Usage: [ROUTES=N | ROUTES="10 2000 10000"] [NEW=60] [BIN=…] bash bench/reload_latency.sh [--release|--profile dist]
set -euo pipefail
cd "$(dirname "$0")/.."
# Several sizes in one go (ROUTES="10 2000 10000"): one run each, one line each.
if [[ "${ROUTES:-}" == *" "* ]]; then
    for n in $ROUTES; do ROUTES=$n bash "$0" "$@"; done
    exit 0
fi
OFFSET=${OFFSET:-24000}
DIR=$(mktemp -d /tmp/reload.XXXX)
cp examples/seed-demo/*.yaml "$DIR/"
[ -n "${BIN:-}" ] || cargo build -q ${1:-} ${2:-} --example seed-demo
PROFILE=debug
case "${1:-}" in --release) PROFILE=release ;; --profile) PROFILE=${2:?a profile name} ;; esac
ROUTES=${ROUTES:-0}
if [ "$ROUTES" -gt 0 ]; then
    python3 - "$DIR" "$ROUTES" <<'PY'
import sys
folder, n = sys.argv[1], int(sys.argv[2])
with open(f"{folder}/bulk.yaml", "w") as f:
    for i in range(n):
        f.write(f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: bulk-{i}, namespace: demo}}
spec:
  parentRefs: [{{name: main-gateway, namespace: platform, sectionName: http}}]
  hostnames: [bulk-{i}.example]
  rules: [{{matches: [{{path: {{type: PathPrefix, value: /api/{i}}}}}], backendRefs: [{{name: http-echo, port: 80}}]}}]
""")
PY
fi
"${BIN:-${CARGO_TARGET_DIR:-target}/$PROFILE/examples/seed-demo}" --config "$DIR" --port-offset "$OFFSET" \
    > "$DIR.log" 2>&1 &
PID=$!
trap 'kill -INT $PID 2>/dev/null || true; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$((80 + OFFSET))") 2>/dev/null && break
    sleep 0.1
done
sleep 1
if [ "$ROUTES" -gt 0 ]; then
    python3 - "$DIR" "$OFFSET" "$ROUTES" "${NEW:-60}" <<'PY'
import http.client, os, statistics, sys, time
folder, offset, n, new = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def status(host):
    try:
        c = http.client.HTTPConnection("127.0.0.1", 80 + offset, timeout=2)
        c.request("GET", "/", headers={"Host": host})
        code = c.getresponse().status
        c.close()
        return code
    except OSError:
        return None
samples, others = [], []
for k in range(new):
    host = f"new-{k}.example"
    text = f"""apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: new-{k}, namespace: demo}}
spec:
  parentRefs: [{{name: main-gateway, namespace: platform, sectionName: http}}]
  hostnames: [{host}]
  rules: [{{backendRefs: [{{name: http-echo, port: 80}}]}}]
"""
    t0 = time.monotonic()
    with open(f"{folder}/.new-{k}.tmp", "w") as f:
        f.write(text)
    os.rename(f"{folder}/.new-{k}.tmp", f"{folder}/new-{k}.yaml")
    while True:
        code = status(host)
        if code == 200:
            break
        if code != 404:
            others.append(code)
        if time.monotonic() - t0 > 10:
            print(f"{host}: no 200 after 10 s", file=sys.stderr)
            break
        time.sleep(0.002)
    samples.append((time.monotonic() - t0) * 1000)
    time.sleep(0.1)
samples.sort()
p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
print(f"{n} routes loaded: write -> first 200 p50 {statistics.median(samples):.0f} ms, "
      f"p99 {p99:.0f} ms, max {max(samples):.0f} ms over {len(samples)} new routes; "
      f"statuses other than 404 before the 200: {others or 'none'}")
PY
    exit 0
fi
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
