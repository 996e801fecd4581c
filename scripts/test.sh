#!/usr/bin/env bash
# Set up, then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# the report test opens report.html in Debian's chromium (no browser download); as root we
# install it, otherwise that one test skips with its reason
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "note: could not install chromium; the browser test will skip"
fi
# two workers of one torch thread each (tests/conftest.py): much of a test's time is
# single-threaded anyway (Lightning set-up, scikit-learn, subprocesses); a test file stays on
# one worker so its module fixtures (a pretrained run) are built once, except the learning
# cases, which spread (tests/conftest.py); SELFSUP_TEST_WORKERS=0: one process
exec .venv/bin/python -m pytest -n "${SELFSUP_TEST_WORKERS:-2}" --dist loadgroup "$@"
