#!/usr/bin/env bash
# Build the topsail worker image offline (issue 16): no registry is
# reachable, so its root file system is made from what this machine has (the
# topsail binary and the shared libraries ldd finds for it, a static busybox,
# the CA certificates) and loaded with `docker import`. Idempotent and fast:
# the image is labelled with the binary's sha256 and rebuilt only when the
# binary changed.
#   scripts/setup/worker-image.sh [BINARY]   (default: target/debug/topsail)
set -euo pipefail

IMAGE="${TOPSAIL_WORKER_IMAGE:-topsail-test/worker:latest}"
cd "$(dirname "$0")/../.."
BIN="${1:-}"
if [ -z "$BIN" ]; then
    # The default binary is the one the tests use: build it as `cargo test`
    # does (a no-op when it is up to date; `cargo build` would build the
    # dependencies a second time, with other features), so that a clean
    # clone gets an image of what it tests.
    cargo test --locked --no-run --quiet
    BIN=target/debug/topsail
fi

[ -x "$BIN" ] || { echo "worker-image.sh: $BIN missing" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "worker-image.sh: no Docker engine reachable" >&2; exit 1; }

sum="$(sha256sum "$BIN" | cut -d' ' -f1)"
have="$(docker image inspect -f '{{ index .Config.Labels "topsail.binary" }}' "$IMAGE" 2>/dev/null || true)"
if [ "$have" = "$sum" ]; then
    echo "worker-image.sh: $IMAGE up to date"
    exit 0
fi

busybox=""
for candidate in /bin/busybox /usr/bin/busybox; do
    if [ -x "$candidate" ] && file -L "$candidate" 2>/dev/null | grep -q 'statically linked'; then
        busybox="$candidate"; break
    fi
done
[ -n "$busybox" ] || { echo "worker-image.sh: no static busybox (apt-get install busybox-static)" >&2; exit 1; }

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/usr/local/bin" "$root/tmp" "$root/work" "$root/etc/ssl/certs" "$root/root"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
cp "$BIN" "$root/usr/local/bin/topsail"
# The binary's shared libraries and the dynamic loader, at their own paths.
for lib in $(ldd "$BIN" | grep -oE '/[^ ]+' | sort -u); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
fi
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"
echo 'hosts: files dns' >"$root/etc/nsswitch.conf"

tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/bin:/bin' \
    --change 'ENV TMPDIR=/work' \
    --change 'WORKDIR /work' \
    --change "LABEL topsail.binary=$sum" \
    --change 'ENTRYPOINT ["/usr/local/bin/topsail"]' \
    --change 'CMD ["worker", "--help"]' \
    - "$IMAGE" >/dev/null
echo "worker-image.sh: built $IMAGE"
