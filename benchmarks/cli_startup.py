"""How long the CLI takes to answer without doing work (issue 17: under 1.5 s), beside the
floor of starting Python and of importing torch, measured in this process's machine.

    python benchmarks/cli_startup.py [--repeats 5]

Prints the median wall time of each command over the repeats (the first run of each is
discarded, so the page cache is warm for all).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    "selfsup --help": [sys.executable, "-m", "selfsup.cli", "--help"],
    "selfsup pretrain --help": [sys.executable, "-m", "selfsup.cli", "pretrain", "--help"],
    "selfsup methods": [sys.executable, "-m", "selfsup.cli", "methods"],
    "selfsup methods dino": [sys.executable, "-m", "selfsup.cli", "methods", "dino"],
    "selfsup datasets": [sys.executable, "-m", "selfsup.cli", "datasets"],
}


def seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'command':<28} median s  (of {args.repeats})")
    for name, command in COMMANDS.items():
        seconds(command)  # warm-up
        times = [seconds(command) for _ in range(args.repeats)]
        print(f"{name:<28} {statistics.median(times):8.2f}")


if __name__ == "__main__":
    main()
