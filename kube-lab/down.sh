#!/usr/bin/env bash
# Stops what up.sh started, the Pods' processes and network namespaces with
# it, and removes the lab's state.
set -uo pipefail
state="${KUBE_LAB_STATE:-/tmp/embedded-gateway-lab}"
# The pod runner first: on SIGTERM it stops every Pod it runs and removes
# their namespaces.
for name in podrunner metallb-controller kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
  if [ -f "$state/$name.pid" ]; then
    pid="$(cat "$state/$name.pid")"
    kill "$pid" 2>/dev/null
    # Wait for it: a server still shutting down would answer the next up.sh.
    for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    rm -f "$state/$name.pid"
  fi
done
# Whatever a killed pod runner left: its Pods' process groups, then their
# namespaces (the host side of each veth goes with its namespace).
if [ -d "$state/pods" ]; then
  for f in "$state"/pods/*/*.pgid; do
    [ -f "$f" ] && kill -9 -- "-$(cat "$f")" 2>/dev/null
  done
fi
for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^lab-/ {print $1}'); do
  ip netns del "$ns"
done
# The Node's address on lo (up.sh).
ip addr del 10.244.0.1/32 dev lo 2>/dev/null
rm -rf "$state"
