#!/usr/bin/env bash
# Python tools the tests use, in a venv at .venv/ of the repository:
#   statelint      an independent Amazon States Language validator (tests/asl_statelint.rs)
#   moto[server]   the local AWS emulator: one process serves Step Functions, S3 (the store
#                  of files that travel), CloudWatch Logs (step logs) and STS (`aws role`)
#   cfn-lint       validates the templates of `topsail compile --to cloudformation`
# Idempotent: re-running with everything installed only checks versions.
set -euo pipefail
cd "$(dirname "$0")/../.."

STATELINT_VERSION=3.1.0
MOTO_VERSION=5.2.5
CFN_LINT_VERSION=1.58.0

python=${PYTHON:-python3}
if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
    # Debian splits venv/ensurepip out of python3.
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi

want() { .venv/bin/python -m pip show "$1" 2>/dev/null | grep -qx "Version: $2"; }

# A stamp of the extras, so that a venv made before an extra was added gets it.
extras="stepfunctions,s3,logs,sts,server"
stamp=.venv/.topsail-moto-extras
if ! want statelint "$STATELINT_VERSION" || ! want moto "$MOTO_VERSION" \
    || ! want cfn-lint "$CFN_LINT_VERSION" || [ "$(cat "$stamp" 2>/dev/null)" != "$extras" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check \
        "statelint==$STATELINT_VERSION" "moto[$extras]==$MOTO_VERSION" "cfn-lint==$CFN_LINT_VERSION"
    echo "$extras" > "$stamp"
fi
.venv/bin/statelint --help >/dev/null 2>&1 || .venv/bin/python -m statelint --help >/dev/null
echo "python tools ready in .venv/ (statelint $STATELINT_VERSION, moto[$extras] $MOTO_VERSION, cfn-lint $CFN_LINT_VERSION)"
