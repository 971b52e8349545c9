#!/usr/bin/env bash
# Builds the lab's binaries that are missing from the cache and prints the
# cache's bin directory. Each component is cached under its own version, so
# a version bump rebuilds only that component:
#   ${KUBE_LAB_CACHE:-~/.cache/embedded-gateway-lab}/<component>-<version>/
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
. "$here/versions.env"
cache="${KUBE_LAB_CACHE:-$HOME/.cache/embedded-gateway-lab}"
bin="$cache/bin"
mkdir -p "$bin"
export CGO_ENABLED=0 GOFLAGS=-mod=mod

log() { echo "kube-lab build: $*" >&2; }

# build <component> <version> <module dir> <binary> <package> [ldflags]
build() {
  local component="$1" version="$2" dir="$3" name="$4" pkg="$5" ldflags="${6:-}"
  local out="$cache/$component-$version/$name"
  if [ ! -x "$out" ]; then
    log "building $name ($component $version)"
    local start=$SECONDS
    mkdir -p "$(dirname "$out")"
    (cd "$dir" && go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg")
    mv "$out.tmp" "$out"
    log "built $name in $((SECONDS - start)) s"
  fi
  ln -sf "$out" "$bin/$name"
}

# /version must tell the truth: the same variables kubernetes' own
# hack/lib/version.sh sets. A module zip carries no commit, so gitCommit stays
# empty and the tree state says where the source came from.
kube_minor="${KUBERNETES_VERSION#v1.}"; kube_minor="${kube_minor%%.*}"
kube_date="$(cd "$here" && go list -m -f '{{.Time.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)"
kube_ldflags=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$kube_minor"
  kube_ldflags+=" -X $p.gitCommit= -X $p.gitTreeState=archive -X $p.buildDate=$kube_date"
done

want="${*:-etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok metallb-controller echo-basic labdns podrunner}"
for w in $want; do
  case "$w" in
    etcd) build etcd "$ETCD_VERSION" "$here/etcd" etcd go.etcd.io/etcd/server/v3 ;;
    kube-apiserver|kube-controller-manager|kube-scheduler|kubectl)
      build kubernetes "$KUBERNETES_VERSION" "$here" "$w" "k8s.io/kubernetes/cmd/$w" "$kube_ldflags" ;;
    kwok) build kwok "$KWOK_VERSION" "$here/kwok" kwok sigs.k8s.io/kwok/cmd/kwok ;;
    metallb-controller) build metallb "$METALLB_VERSION" "$here/metallb" metallb-controller go.universe.tf/metallb/controller ;;
    echo-basic) build echo-basic "$GATEWAY_API_VERSION" "$here/echo-basic" echo-basic sigs.k8s.io/gateway-api/conformance/echo-basic ;;
    # The lab's stand-in for the conformance suite's coredns (echo-basic/labdns).
    labdns) build labdns "$(cat "$here"/echo-basic/labdns/*.go "$here/echo-basic/go.sum" | sha256sum | cut -c1-12)" "$here/echo-basic" labdns ./labdns ;;
    # The lab's own tool: cached under a hash of its source.
    podrunner) build podrunner "$(cat "$here"/podrunner/*.go "$here/go.sum" | sha256sum | cut -c1-12)" "$here" podrunner ./podrunner ;;
    *) log "unknown component $w"; exit 2 ;;
  esac
done
echo "$bin"
