#!/usr/bin/env bash
# Build the local control plane's binaries from the Go module proxy at the versions pinned in
# versions.env, once, into ~/.cache/meetingbot-operator/bin. A second run finds every binary
# in place and does nothing. Progress goes to stderr; the bin directory is printed on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${MEETINGBOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meetingbot-operator}
bin=$cache/bin
work=$cache/build
mkdir -p "$bin" "$work"
export GOFLAGS="-trimpath -buildvcs=false" CGO_ENABLED=0 GOTOOLCHAIN=local

say() { printf '[build %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
have() { for f in "$@"; do [ -x "$bin/$f" ] || return 1; done; }
timed() { local t0=$SECONDS; "$@"; say "  done in $((SECONDS - t0))s"; }

kube_minor=${KUBE_VERSION#v1.}; kube_minor=${kube_minor%%.*}
kube_libs=v0.${KUBE_VERSION#v1.}

build_kube() {
  # The control plane, plus the real node's kubelet and kube-proxy. Only missing ones are built.
  local all=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
  local names=() n
  for n in "${all[@]}"; do have "$n-$KUBE_VERSION" || names+=("$n"); done
  [ ${#names[@]} -eq 0 ] && { say "kubernetes $KUBE_VERSION: cached"; return; }
  say "kubernetes $KUBE_VERSION: building ${names[*]} (first time only; ~20-30 min on 2 cores)"
  local dir=$work/kubernetes-$KUBE_VERSION
  mkdir -p "$dir" && cd "$dir"
  # k8s.io/kubernetes requires its staging modules at v0.0.0; replace every one of them with
  # the published v0.X.Y of the same release. The list is read from the release's own go.mod.
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  {
    echo "module meetingbot.dev/localcluster/kubernetes"
    echo
    echo "go $(go env GOVERSION | sed 's/^go//; s/\.[0-9]*$//').0"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    echo "replace ("
    grep -E '^\s+k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" \
      | awk -v v="$kube_libs" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } > go.mod
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
)
GO
  say "  resolving modules"
  go mod tidy -e >/dev/null 2>&1 || true
  go mod download
  local pkg=k8s.io/component-base/version cgo=k8s.io/client-go/pkg/version
  local ld="-s -w"
  for p in $pkg $cgo; do
    ld+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$kube_minor"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  mkdir -p out
  for n in "${names[@]}"; do
    say "  go build $n"
    timed go build -tags tools -ldflags "$ld" -o "out/$n" "k8s.io/kubernetes/cmd/$n"
    mv "out/$n" "$bin/$n-$KUBE_VERSION"
  done
}

build_etcd() {
  have "etcd-$ETCD_VERSION" && { say "etcd $ETCD_VERSION: cached"; return; }
  say "etcd $ETCD_VERSION: building"
  local dir=$work/etcd-$ETCD_VERSION
  mkdir -p "$dir" && cd "$dir"
  # go.etcd.io/etcd/server/v3 has replace directives and cannot be `go install`ed; a wrapper
  # module whose main calls etcdmain.Main builds the same server.
  cat > go.mod <<MOD
module meetingbot.dev/localcluster/etcd

go $(go env GOVERSION | sed 's/^go//; s/\.[0-9]*$//').0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
  cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  go mod tidy >/dev/null 2>&1
  timed go build -ldflags "-s -w" -o "$bin/etcd-$ETCD_VERSION" .
}

build_install() { # name version module-path [extra ldflags]
  local name=$1 version=$2 path=$3 extra=${4:-}
  have "$name-$version" && { say "$name $version: cached"; return; }
  say "$name $version: go install $path@$version"
  local gobin=$work/gobin-$name-$version
  GOBIN=$gobin timed go install -ldflags "-s -w $extra" "$path@$version"
  mv "$gobin/$(basename "$path")" "$bin/$name-$version"
}

build_promtool() {
  # Built from a module of ours (devenv/cluster/promtool): its go.mod pins Prometheus and
  # replaces the one dependency version the module proxy does not serve (nomad/api).
  local name=promtool version=$PROMTOOL_VERSION
  have "$name-$version" && { say "$name $version: cached"; return; }
  say "$name $version: go build (Prometheus module $version)"
  local src=$work/promtool-$version
  rm -rf "$src" && mkdir -p "$src" && cp "$here/promtool/go.mod" "$here/promtool/go.sum" "$src/"
  (cd "$src" && timed go build -ldflags "-s -w" -o "$bin/$name-$version" \
    github.com/prometheus/prometheus/cmd/promtool)
}

build_kstatus() {
  # A checker of ours (devenv/cluster/kstatus/main.go) around cli-utils' kstatus, pinned by
  # its go.mod: how Flux reads an object's conditions.
  local name=kstatus-check version=$KSTATUS_VERSION
  have "$name-$version" && { say "$name $version: cached"; return; }
  say "$name $version: go build (sigs.k8s.io/cli-utils $version)"
  local src=$work/kstatus-$version
  rm -rf "$src" && mkdir -p "$src" && cp "$here"/kstatus/{go.mod,go.sum,main.go} "$src/"
  (cd "$src" && timed go build -ldflags "-s -w" -o "$bin/$name-$version" .)
}

t0=$SECONDS
if [ "${1:-}" = extras ]; then
  # What `make test` and `make release` need beyond the cluster (`make demo` does not): the
  # NetworkPolicy agent, the registry, the signer and the SBOM writer (~5 min the first time).
  build_install kube-router "$KUBE_ROUTER_VERSION" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router
  build_install registry "$REGISTRY_VERSION" github.com/distribution/distribution/v3/cmd/registry
  build_install cosign "$COSIGN_VERSION" github.com/sigstore/cosign/v2/cmd/cosign
  build_install syft "$SYFT_VERSION" github.com/anchore/syft/cmd/syft "-X main.version=${SYFT_VERSION#v}"
  say "extra tools ready in $((SECONDS - t0))s"
  echo "$bin"
  exit 0
fi
build_etcd
build_install kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok
build_install kwokctl "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwokctl
# Helm's own Makefile sets these: its version, and the Kubernetes version it assumes offline
# (for `helm template` and `helm lint`), here the version of our control plane.
helm_ld="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  helm_ld+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kube_minor"
done
build_install helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm "$helm_ld"
# Cluster DNS for the real node (runs on the host; a selector-less kube-dns Service points at it).
build_install coredns "$COREDNS_VERSION" github.com/coredns/coredns \
  "-X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION"
build_install kubeconform "$KUBECONFORM_VERSION" github.com/yannh/kubeconform/cmd/kubeconform
build_install kube-score "$KUBE_SCORE_VERSION" github.com/zegl/kube-score/cmd/kube-score
build_promtool
build_kstatus
build_install versitygw "$VERSITYGW_VERSION" github.com/versity/versitygw/cmd/versitygw
build_kube
say "all binaries ready in $((SECONDS - t0))s"
echo "$bin"
