#!/usr/bin/env bash
# Benchmark: how long after a change `topsail lsp` publishes the diagnostics of
# a 2,000-step pipeline (target: under 50 ms). Uses the release binary and the
# check benchmark's generator; the client is stdlib Python over stdio.
#
#   scripts/bench/lsp.sh [STEPS]      # default 2000
set -euo pipefail
cd "$(dirname "$0")/../.."
steps=${1:-2000}
cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 scripts/bench/gen_pipeline.py "$steps" "$work" >/dev/null
python3 scripts/bench/lsp_latency.py "$PWD/target/release/topsail" "$work/pipeline.topsail" --edits 40
