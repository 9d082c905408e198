#!/usr/bin/env bash
# Soak benchmark of `topsail worker` on the Step Functions emulator (issue 5):
# 200 executions of a 10-step pipeline in containers of the local busybox
# image, 4 workers killed (SIGKILL) at random and restarted. Reports
# executions succeeded, tasks lost (goal 0), and per-task worker time
# against a plain `docker run`. Extra arguments go to soak.py (--host,
# --executions N, --workers W, --kill-every SECONDS).
# Usage: scripts/bench/soak.sh [path/to/topsail] [soak.py args]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="$(realpath "${1:-target/release/topsail}")"
shift || true
started=0
if ! scripts/services status >/dev/null 2>&1; then
    scripts/services start
    started=1
fi
trap '[ "$started" = 1 ] && scripts/services stop' EXIT
.venv/bin/python scripts/bench/soak.py "$BIN" "$@"
