#!/usr/bin/env bash
# Makespan of compiled state machines vs the DAG's critical path, and compile
# time for 10,000 steps (benches/asl.rs, built with --release).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo bench --locked --bench asl "$@"
