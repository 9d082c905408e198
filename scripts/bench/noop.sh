#!/usr/bin/env bash
# Issue 17, side by side in one run: 1,000 no-op host steps (a DAG 50 wide:
# 50 chains of 20), `topsail run --jobs 2` against `make -j2` on the same
# DAG, ROUNDS times each, alternating (topsail, make, topsail, make, ...) so
# both see the same machine load; prints every round and the medians.
# The steps are `run true`: a plain command, started without a shell as
# make starts `@true` (src/run/direct.rs).
# Usage: scripts/bench/noop.sh [path/to/topsail] [ROUNDS]   (default: target/release/topsail, 5)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="$(realpath "${1:-target/release/topsail}")"
ROUNDS="${2:-5}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT INT TERM

scripts/bench/noop_dag.sh "$work"

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

(cd "$work" && "$BIN" check pipeline.topsail >/dev/null 2>&1)
: >"$work/t.txt"
: >"$work/m.txt"
for r in $(seq 1 "$ROUNDS"); do
    t=$(date +%s%N); (cd "$work" && CI=1 "$BIN" run --jobs 2 >/dev/null); ts=$(ms "$t")
    rm -rf "$work/.topsail"
    t=$(date +%s%N); (cd "$work" && make -s -j2 >/dev/null); tm=$(ms "$t")
    echo "$ts" >>"$work/t.txt"
    echo "$tm" >>"$work/m.txt"
    echo "round $r: topsail --jobs 2 ${ts} ms   make -j2 ${tm} ms"
done
ts=$(median <"$work/t.txt")
tm=$(median <"$work/m.txt")
echo "median of $ROUNDS: topsail ${ts} ms, make ${tm} ms, ratio $(echo "scale=2; $ts / $tm" | bc)"
