#!/usr/bin/env bash
# Set up, then pretrain SimCLR on the built-in digits and print kNN, linear-probe and RankMe.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/selfsup pretrain --data digits --method simclr "$@"
