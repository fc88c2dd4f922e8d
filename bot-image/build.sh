#!/usr/bin/env bash
# Build the bot image (make image) or the operator's (make operator-image) with podman. Without BASE_IMAGE, a Debian base is made
# locally with debootstrap (no registry needed) and cached; with BASE_IMAGE (e.g.
# docker.io/library/debian:bookworm-slim) that image is used as the base instead. PLATFORM
# (linux/amd64, linux/arm64) builds for another architecture than the host's: its Debian base is
# bootstrapped for that architecture, and the build's RUN steps run under qemu-user-static.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[image %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

IMAGE=${IMAGE:-localhost/meetingbot-bot:dev}
DOCKERFILE=${DOCKERFILE:-bot-image/Dockerfile}
SUITE=${DEBIAN_SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${MEETINGBOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meetingbot-operator}/images
mkdir -p "$cache"

host_arch=$(dpkg --print-architecture)
arch=${PLATFORM:+${PLATFORM#linux/}}
arch=${arch:-$host_arch}
platform=(--platform "linux/$arch")
# The host's architecture keeps the names it always had (caches from before PLATFORM).
suffix=$([ "$arch" = "$host_arch" ] && echo "" || echo "-$arch")
if [ "$arch" != "$host_arch" ] && [ ! -e "/proc/sys/fs/binfmt_misc/qemu-${arch/arm64/aarch64}" ]; then
  echo "building for linux/$arch needs qemu-user-static's binfmt handler (apt-get install qemu-user-static)" >&2
  exit 1
fi

if [ -z "${BASE_IMAGE:-}" ]; then
  BASE_IMAGE=localhost/meetingbot-debian:$SUITE$suffix
  if ! podman image exists "$BASE_IMAGE"; then
    rootfs_tar=$cache/debian-$SUITE$suffix-rootfs.tar
    if [ ! -s "$rootfs_tar" ]; then
      say "bootstrapping a Debian $SUITE $arch base with debootstrap (first time only, a few minutes)"
      root=$(mktemp -d)
      debootstrap --arch="$arch" --variant=minbase "$SUITE" "$root" "$MIRROR" >&2
      rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
      tar -C "$root" -cf "$rootfs_tar.partial" .
      mv "$rootfs_tar.partial" "$rootfs_tar"
      rm -rf "$root"
    fi
    say "importing the base as $BASE_IMAGE"
    podman import --arch "$arch" "$rootfs_tar" "$BASE_IMAGE" >/dev/null
  fi
fi

# HTTPS from inside a build goes through this machine's egress proxy (and corporate proxies
# elsewhere): the host's CA bundle is offered to pip and npm as a build secret.
secret=()
ca=${EXTRA_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
[ -f "$ca" ] && secret=(--secret "id=ca,src=$ca")

# IMAGE_LABELS: space-separated key=value labels (`make release`: the OCI version, revision
# and source). They make a release's image its own, apart from a dev build of the same files.
labels=()
for label in ${IMAGE_LABELS:-}; do labels+=(--label "$label"); done

say "podman build $IMAGE (base $BASE_IMAGE)"
started=$SECONDS
podman build --network=host --isolation=chroot --layers "${platform[@]}" "${labels[@]}" \
  --build-arg "BASE_IMAGE=$BASE_IMAGE" "${secret[@]}" \
  -f "$DOCKERFILE" -t "$IMAGE" . >&2
say "built $IMAGE in $((SECONDS - started))s; size $(podman image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')"
echo "$IMAGE"
