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
# two workers: much of a test's time is single-threaded (Lightning set-up, scikit-learn,
# subprocesses), so two at once use both cores; a file stays on one worker so its
# module fixtures (a pretrained run) are built once; SELFSUP_TEST_WORKERS=0: one process
exec .venv/bin/python -m pytest -n "${SELFSUP_TEST_WORKERS:-2}" --dist loadfile "$@"
