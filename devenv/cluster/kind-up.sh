#!/usr/bin/env bash
# For users with Docker: a kind cluster equivalent to the local control plane.
# (It cannot run on the project's CI machine, which has no Docker engine; make cluster-up is
# what tests use there.) Pinned to the same Kubernetes version as devenv/cluster/versions.env.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/versions.env"
name=${KIND_CLUSTER_NAME:-meetingbot}
command -v kind >/dev/null || { echo "kind is not installed: go install sigs.k8s.io/kind@latest" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "kind needs a running Docker (or podman) engine" >&2; exit 1; }
if kind get clusters | grep -qx "$name"; then
  echo "kind cluster $name already exists"
else
  kind create cluster --name "$name" --image "kindest/node:$KUBE_VERSION" --wait 120s
fi
kubectl --context "kind-$name" get nodes
echo "kubectl context: kind-$name"
