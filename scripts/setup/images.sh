#!/usr/bin/env bash
# Build the small images the runner's Docker tests and benchmark use, offline:
# no registry is reachable, so Debian's busybox-static is unpacked into a root
# file system and loaded with `docker import`. Idempotent: does nothing when the
# image is already there.
set -euo pipefail

IMAGE="${TOPSAIL_TEST_IMAGE:-topsail-test/busybox:latest}"

if ! docker info >/dev/null 2>&1; then
    echo "images.sh: no Docker engine reachable (is dockerd running? DOCKER_HOST=${DOCKER_HOST:-unset})" >&2
    exit 1
fi

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "images.sh: $IMAGE already present"
    exit 0
fi

busybox=""
for candidate in /bin/busybox /usr/bin/busybox; do
    if [ -x "$candidate" ] && file -L "$candidate" 2>/dev/null | grep -q 'statically linked'; then
        busybox="$candidate"
        break
    fi
done
if [ -z "$busybox" ]; then
    if ! dpkg -s busybox-static >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq busybox-static >/dev/null
    fi
    busybox=/bin/busybox
fi

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/tmp" "$root/workspace" "$root/etc"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
# One symlink per applet, so `sh`, `true`, `sleep`, `cat` ... exist in the image.
for applet in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"

tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/bin' \
    --change 'CMD ["/bin/sh"]' \
    - "$IMAGE" >/dev/null
echo "images.sh: built $IMAGE"
