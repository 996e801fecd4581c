"""B5: the same pretraining in 1 process and in N torchrun processes at equal global batch,
on this machine's CPU cores, with selfsup's default options.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/torchrun_scaling.py [--processes 2] [--epochs 3]

1 process runs with all the cores' threads (torch's default); each torchrun process gets
cores / N threads (torchrun's OMP_NUM_THREADS=1 on 2 cores), so both use the same cores and
the ratio is the cost of splitting a step over processes: gathered negatives, all-reduced
BatchNorm statistics and gradients, N Python processes. ``train_seconds`` (``trainer.fit``:
steps, monitors, checkpoints) of each run's summary.json is compared; ``--repeats`` runs
each that many times, interleaved, and the median is reported. Prints one line per run,
then ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def train_seconds(command: list[str], out: Path, env: dict) -> float:
    done = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True, env={**os.environ, **env})
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    return json.loads((out / "summary.json").read_text())["train_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits")
    parser.add_argument("--method", default="simclr")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--options", nargs=argparse.REMAINDER, default=[], help="more pretrain options")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    options = ["pretrain", "--data", args.data, "--method", args.method, "--epochs", str(args.epochs),
               "--no-report", *args.options]
    one = [sys.executable, "-m", "selfsup.cli", *options]
    many = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.processes}",
            "-m", "selfsup.cli", *options]
    threads = str(max(1, cores // args.processes))
    times = {"one": [], "torchrun": []}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            times["one"].append(train_seconds(one, Path(scratch, f"one-{repeat}"), {}))
            times["torchrun"].append(train_seconds(many, Path(scratch, f"many-{repeat}"), {"OMP_NUM_THREADS": threads}))
            print(f"repeat {repeat + 1}: 1 process {times['one'][-1]:.1f} s, {args.processes} processes "
                  f"{times['torchrun'][-1]:.1f} s  load={os.getloadavg()}", flush=True)
        config = Path(scratch, "many-0", "config.yaml").read_text()
    precision = next(line.split(": ")[1] for line in config.splitlines() if line.startswith("precision:"))
    one_s, many_s = statistics.median(times["one"]), statistics.median(times["torchrun"])
    print("RESULT " + json.dumps({"data": args.data, "method": args.method, "epochs": args.epochs,
                                  "processes": args.processes, "cores": cores, "precision": precision,
                                  "threads_per_process": int(threads), "one_process_s": one_s,
                                  "torchrun_s": many_s, "ratio": round(many_s / one_s, 3),
                                  "times": times, "loadavg": os.getloadavg()}))


if __name__ == "__main__":
    main()
