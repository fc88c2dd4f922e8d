#!/usr/bin/env bash
# The system packages `make demo`, `make test` and .ci/run need, checked in a second or two and
# installed when missing (as root, with apt-get). Without root it stops at once with the one
# command that installs them. Go, Node.js and Python are checked, not installed: Debian's Go is
# too old to build the pinned Kubernetes.
set -euo pipefail
say() { printf '[prereqs %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

pkgs=(
  # the bots' browser, its fonts; libatomic1 for Playwright's driver
  chromium fonts-dejavu-core fonts-liberation libatomic1
  # images: podman builds them from a Debian base bootstrapped locally; skopeo reads back what
  # `make release` pushed
  podman runc debootstrap uidmap skopeo
  # the real node: containerd, CNI plugins, kube-proxy's iptables and conntrack, port-forward's
  # socat; gcc and libc6-dev compile the pause image; openssl signs the node's certificates;
  # ipset for the NetworkPolicy agent (devenv/cluster/policy.py)
  containerd containernetworking-plugins iptables conntrack socat gcc libc6-dev openssl ipset
  python3-venv git curl ca-certificates
)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing system packages: ${missing[*]}" >&2
    echo "install them with:  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    echo "(the local cluster's real node also needs root to run containerd and the kubelet)" >&2
    exit 1
  fi
  say "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# apt may start a system containerd where an init system exists; ours runs on its own socket.
for tool in go node npm python3; do
  command -v "$tool" >/dev/null || { echo "$tool is required and not installed" >&2; exit 1; }
done
