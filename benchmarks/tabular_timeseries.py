"""Tables and time series: short pretraining runs on the built-in tables and UCR/UEA
datasets, each beside the same backbone with random weights and beside the raw features
(the standardised inputs, flattened), under one protocol (kNN k=20 and a linear probe on
a fixed stratified 20% holdout).

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python benchmarks/tabular_timeseries.py [--only NAME ...]

Prints a Markdown table per modality and a final ``RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings

from selfsup.config import PretrainConfig
from selfsup.data import model_input
from selfsup.evaluate.protocols import evaluate_embeddings
from selfsup.train import pretrain
from selfsup.train.run import prepare_data

# (data, method, options): budgets chosen to keep each run within about a minute on a CPU
RUNS = [
    ("wine", "scarf", dict(epochs=100)),
    ("wine", "simclr", dict(epochs=100)),
    ("breast_cancer", "scarf", dict(epochs=50, batch_size=128)),
    ("iris", "scarf", dict(epochs=100)),
    ("iris", "byol", dict(epochs=100)),
    ("GunPoint", "simclr", dict(epochs=30, batch_size=64)),
    ("GunPoint", "masked_series", dict(epochs=30, batch_size=64)),
    ("ItalyPowerDemand", "simclr", dict(epochs=10, batch_size=128)),
    ("BasicMotions", "simclr", dict(epochs=40, batch_size=32)),
    ("JapaneseVowels", "simclr", dict(epochs=10, batch_size=128)),
    ("JapaneseVowels", "masked_series", dict(epochs=10, batch_size=128)),
]


def raw_features(config: PretrainConfig) -> tuple[str, dict]:
    """The modality, and kNN and linear top-1 on the standardised raw inputs, flattened:
    no model at all."""
    source, train, test = prepare_data(config)
    mean, std = source.channel_stats()
    flat = [model_input(part.samples, mean, std).flatten(1) for part in (train, test)]
    return source.modality, evaluate_embeddings(flat[0], train.labels, flat[1], test.labels, knn_k=config.knn_k)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="datasets to run (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}; torch threads: OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as directory, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for data, method, options in RUNS:
            if args.only and data not in args.only:
                continue
            config = PretrainConfig(data=data, method=method, seed=args.seed, report=False,
                                    out=f"{directory}/{data}-{method}", **options)
            started = time.time()
            summary = pretrain(config)
            seconds = time.time() - started
            modality, raw = raw_features(config)
            rows.append(dict(data=data, modality=modality, method=method, backbone=summary["backbone"], epochs=summary["epochs"],
                             knn=summary["knn_top1"], random_knn=summary["baseline_knn_top1"],
                             raw_knn=raw["knn_top1"], linear=summary["linear_top1"],
                             random_linear=summary["baseline_linear_top1"], raw_linear=raw["linear_top1"],
                             seconds=round(seconds, 1)))
            r = rows[-1]
            print(f"{data} {method}: kNN {r['knn']:.3f} (random {r['random_knn']:.3f}, raw {r['raw_knn']:.3f}), "
                  f"linear {r['linear']:.3f} (random {r['random_linear']:.3f}, raw {r['raw_linear']:.3f}), "
                  f"{seconds:.0f} s", flush=True)
    for modality in ("table", "timeseries"):
        chosen = [r for r in rows if r["modality"] == modality]
        if not chosen:
            continue
        print(f"\n{modality}\n\n| dataset | method | backbone | epochs | kNN (random / raw) | linear (random / raw) | seconds |")
        print("|---|---|---|---|---|---|---|")
        for r in chosen:
            print(f"| {r['data']} | {r['method']} | {r['backbone']} | {r['epochs']} | {r['knn']:.3f} "
                  f"({r['random_knn']:.3f} / {r['raw_knn']:.3f}) | {r['linear']:.3f} ({r['random_linear']:.3f} / "
                  f"{r['raw_linear']:.3f}) | {r['seconds']} |")
    print(f"\nload average at end: {os.getloadavg()}")
    print("RESULT " + json.dumps(rows))


if __name__ == "__main__":
    main()
