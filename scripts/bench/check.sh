#!/usr/bin/env bash
# Benchmark: `topsail check` as a whole process on generated pipelines of
# 1,000, 10,000 and 100,000 steps, with peak memory, against `just --summary`
# on an equivalent justfile and `make -n` on an equivalent Makefile.
# Targets (2-core machine): 10k steps < 100 ms; 100k < 1 s and < 500 MB.
#
#   scripts/bench/check.sh            # builds the release binary first
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
bin=$PWD/target/release/topsail
# just for the comparison: the one on the PATH, else PyPI's rust-just (a
# prebuilt just binary) in the project's venv.
just_bin=$(command -v just || true)
if [ -z "$just_bin" ]; then
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/python -m pip install -q --disable-pip-version-check rust-just==1.59.0 >/dev/null 2>&1 || true
    [ -x .venv/bin/just ] && just_bin=$PWD/.venv/bin/just
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Median wall time (ms) of REPS runs of a command, and its peak RSS (MB).
# A command still running after LIMIT seconds counts as ">LIMIT s".
measure() {
    local reps=$1 limit=$2; shift 2
    local times=() t0 t1
    for _ in $(seq "$reps"); do
        t0=$(date +%s%N)
        local rc=0
        timeout "$limit" "$@" >/dev/null 2>&1 || rc=$?
        if [ "$rc" -eq 124 ]; then
            echo ">$((limit * 1000)) 0"
            return
        fi
        t1=$(date +%s%N)
        times+=($(( (t1 - t0) / 1000000 )))
    done
    local median rss_file rss
    median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    rss_file=$(mktemp)
    /usr/bin/time -f '%M' -o "$rss_file" "$@" >/dev/null 2>&1 || true
    rss=$(tail -1 "$rss_file"); rm -f "$rss_file"
    echo "$median $(( ${rss:-0} / 1024 ))"
}

printf '%-8s %14s %10s %14s %14s %10s %10s\n' steps "topsail ms" "MB" "just ms" "make -n ms" "just/ts" "make/ts"
for n in 1000 10000 100000; do
    d=$work/$n
    python3 scripts/bench/gen_pipeline.py "$n" "$d"
    reps=7; [ "$n" -ge 100000 ] && reps=3
    (cd "$d" && "$bin" check pipeline.topsail >/dev/null 2>&1) || { echo "check failed on $n steps" >&2; "$bin" check "$d/pipeline.topsail" 2>&1 | tail -5; exit 1; }
    read -r ts_ms ts_mb < <(cd "$d" && measure "$reps" 60 "$bin" check pipeline.topsail)
    just_ms=-; make_ms=-
    if [ -n "$just_bin" ]; then
        read -r just_ms _ < <(cd "$d" && measure "$reps" 120 "$just_bin" --summary)
    fi
    read -r make_ms _ < <(cd "$d" && measure "$reps" 120 make -n all)
    ratio() { case "$1" in -) echo - ;; '>'*) echo "${1}/$2" | awk -F/ '{printf ">%.0f", substr($1,2) / $2}' ;; *) awk "BEGIN {printf \"%.2f\", $1 / $2}" ;; esac; }
    printf '%-8s %14s %10s %14s %14s %10s %10s\n' "$n" "$ts_ms" "$ts_mb" "$just_ms" "$make_ms" \
        "$(ratio "$just_ms" "$ts_ms")" "$(ratio "$make_ms" "$ts_ms")"
done
