#!/usr/bin/env bash
# Runner benchmark (issue 3), one measurement per line:
#  (a) 1,000 no-op host steps, a DAG 50 wide (50 chains of 20: step i of a
#      layer needs step i of the layer before), `topsail run --jobs 2` against
#      `make -j2` on the equivalent Makefile;
#  (b) 20 container steps running `true` in the local busybox image, with
#      --jobs 1 and --jobs 4, against a shell loop of `docker run --rm`.
# Usage: scripts/bench/run.sh [path/to/topsail]   (default: target/release/topsail)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="$(realpath "${1:-target/release/topsail}")"
IMAGE="topsail-test/busybox:latest"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc; }

# (a) ------------------------------------------------------------------
scripts/bench/noop_dag.sh "$work/a"

(cd "$work/a" && "$BIN" check pipeline.topsail >/dev/null)
t=$(now); (cd "$work/a" && CI=1 "$BIN" run --jobs 2 >/dev/null); ts=$(elapsed "$t")
t=$(now); (cd "$work/a" && make -s -j2 >/dev/null); tm=$(elapsed "$t")
printf '(a) 1000 host steps, 50 wide: topsail --jobs 2: %.2fs   make -j2: %.2fs\n' "$ts" "$tm"

# (b) ------------------------------------------------------------------
docker image inspect "$IMAGE" >/dev/null 2>&1 || {
    echo "(b) skipped: $IMAGE missing, run scripts/setup/images.sh" >&2
    exit 1
}
mkdir -p "$work/b"
{
    echo "pipeline bench-docker"
    echo "image \"$IMAGE\""
    for i in $(seq 1 20); do printf 'c%d:\n    run true\n' "$i"; done
} >"$work/b/pipeline.topsail"
t=$(now); (cd "$work/b" && CI=1 "$BIN" run --jobs 1 >/dev/null); t1=$(elapsed "$t")
t=$(now); (cd "$work/b" && CI=1 "$BIN" run --jobs 4 >/dev/null); t4=$(elapsed "$t")
t=$(now); for i in $(seq 1 20); do docker run --rm "$IMAGE" true; done; tl=$(elapsed "$t")
printf '(b) 20 container steps: topsail --jobs 1: %.2fs (%.0f ms/step)   --jobs 4: %.2fs (%.0f ms/step)   docker run --rm loop: %.2fs (%.0f ms/step)\n' \
    "$t1" "$(echo "$t1 * 50" | bc)" "$t4" "$(echo "$t4 * 50" | bc)" "$tl" "$(echo "$tl * 50" | bc)"
