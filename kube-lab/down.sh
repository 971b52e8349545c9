#!/usr/bin/env bash
# Stops what up.sh started and removes its state.
set -uo pipefail
state="${KUBE_LAB_STATE:-/tmp/embedded-gateway-lab}"
for name in kube-apiserver etcd; do
  if [ -f "$state/$name.pid" ]; then
    pid="$(cat "$state/$name.pid")"
    kill "$pid" 2>/dev/null
    # Wait for it: a server still shutting down would answer the next up.sh.
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    rm -f "$state/$name.pid"
  fi
done
rm -rf "$state"
