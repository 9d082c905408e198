#!/usr/bin/env bash
# The no-op DAG of the runner benchmarks (run.sh, noop.sh): 1,000 host steps
# `run true`, 50 wide (50 chains of 20: step i of a layer needs step i of
# the layer before), as DIR/pipeline.topsail and the same DAG as
# DIR/Makefile (`@true` recipes), so topsail and make run the same work.
# Usage: scripts/bench/noop_dag.sh DIR
set -euo pipefail
dir="$1"
mkdir -p "$dir"
{
    echo "pipeline bench-host"
    for layer in $(seq 0 19); do
        for i in $(seq 0 49); do
            if [ "$layer" -eq 0 ]; then
                printf 's%d_%d:\n    run true\n' "$layer" "$i"
            else
                printf 's%d_%d: s%d_%d\n    run true\n' "$layer" "$i" $((layer - 1)) "$i"
            fi
        done
    done
} >"$dir/pipeline.topsail"
{
    all=""
    for layer in $(seq 0 19); do
        for i in $(seq 0 49); do all="$all s${layer}_$i"; done
    done
    echo ".PHONY: all$all"
    echo "all:$all"
    for layer in $(seq 0 19); do
        for i in $(seq 0 49); do
            if [ "$layer" -eq 0 ]; then
                printf 's%d_%d:\n\t@true\n' "$layer" "$i"
            else
                printf 's%d_%d: s%d_%d\n\t@true\n' "$layer" "$i" $((layer - 1)) "$i"
            fi
        done
    done
} >"$dir/Makefile"
