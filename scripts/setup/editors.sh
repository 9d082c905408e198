#!/usr/bin/env bash
# Python packages the editor tests use (tests/editors.rs), in the project
# venv .venv/. Creates the venv when missing and installs only what is not
# there yet, so a second run costs nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
req=scripts/setup/requirements-editors.txt
if ! .venv/bin/python -c "import textmate_grammar" 2>/dev/null; then
    echo "installing: $(grep -v '^#' "$req" | tr '\n' ' ')" >&2
    .venv/bin/pip install --quiet --disable-pip-version-check -r "$req"
fi
