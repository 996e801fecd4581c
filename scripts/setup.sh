#!/usr/bin/env bash
# Create .venv/ in the project root and install selfsup (editable) with its test tools.
# Idempotent: does nothing when pyproject.toml has not changed since the last setup.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
stamp=.venv/.selfsup-setup
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/selfsup ]; then
    exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# torch first and pinned, so nothing later pulls a different build
.venv/bin/pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/pip install --quiet -e ".[test]"
echo "$want" > "$stamp"
echo "selfsup installed in .venv/ (.venv/bin/selfsup)"
