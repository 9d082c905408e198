#!/usr/bin/env bash
# The Docker engine the runner's tests use. On this project's machines the
# engine is started before a session; when it is not reachable (it died, or
# a fresh machine did not start it) and we are root with dockerd installed,
# start one and note its pid in target/services/dockerd.pid, so that
# `scripts/services stop` (called when the tests end) stops what we started
# and nothing else. Idempotent: does nothing while an engine answers.
set -euo pipefail
cd "$(dirname "$0")/../.."

if docker info >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v dockerd >/dev/null 2>&1; then
    echo "docker.sh: no Docker engine reachable and none can be started here (DOCKER_HOST=${DOCKER_HOST:-unset})" >&2
    exit 1
fi
mkdir -p target/services
log=target/services/dockerd.log
setsid dockerd >"$log" 2>&1 </dev/null &
echo $! >target/services/dockerd.pid
for _ in $(seq 1 300); do
    if docker info >/dev/null 2>&1; then
        echo "docker.sh: started dockerd (pid $(cat target/services/dockerd.pid))"
        exit 0
    fi
    sleep 0.1
done
echo "docker.sh: dockerd did not answer within 30 s; see $log:" >&2
tail -20 "$log" >&2 || true
exit 1
