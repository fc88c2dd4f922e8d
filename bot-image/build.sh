#!/usr/bin/env bash
# Build the bot image (make image) or the operator's (make operator-image) with podman. Without BASE_IMAGE, a Debian base is made
# locally with debootstrap (no registry needed) and cached; with BASE_IMAGE (e.g.
# docker.io/library/debian:bookworm-slim) that image is used as the base instead.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[image %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

IMAGE=${IMAGE:-localhost/meetingbot-bot:dev}
DOCKERFILE=${DOCKERFILE:-bot-image/Dockerfile}
SUITE=${DEBIAN_SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${MEETINGBOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meetingbot-operator}/images
mkdir -p "$cache"

if [ -z "${BASE_IMAGE:-}" ]; then
  BASE_IMAGE=localhost/meetingbot-debian:$SUITE
  if ! podman image exists "$BASE_IMAGE"; then
    rootfs_tar=$cache/debian-$SUITE-rootfs.tar
    if [ ! -s "$rootfs_tar" ]; then
      say "bootstrapping a Debian $SUITE base with debootstrap (first time only, a few minutes)"
      root=$(mktemp -d)
      debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >&2
      rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
      tar -C "$root" -cf "$rootfs_tar.partial" .
      mv "$rootfs_tar.partial" "$rootfs_tar"
      rm -rf "$root"
    fi
    say "importing the base as $BASE_IMAGE"
    podman import "$rootfs_tar" "$BASE_IMAGE" >/dev/null
  fi
fi

# HTTPS from inside a build goes through this machine's egress proxy (and corporate proxies
# elsewhere): the host's CA bundle is offered to pip and npm as a build secret.
secret=()
ca=${EXTRA_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
[ -f "$ca" ] && secret=(--secret "id=ca,src=$ca")

say "podman build $IMAGE (base $BASE_IMAGE)"
started=$SECONDS
podman build --network=host --isolation=chroot --layers \
  --build-arg "BASE_IMAGE=$BASE_IMAGE" "${secret[@]}" \
  -f "$DOCKERFILE" -t "$IMAGE" . >&2
say "built $IMAGE in $((SECONDS - started))s; size $(podman image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')"
echo "$IMAGE"
