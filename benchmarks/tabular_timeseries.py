"""Tables and time series: short pretraining runs on the built-in tables and UCR/UEA
datasets, each beside the same backbone with random weights and beside the raw features
(the standardised inputs, flattened), under one protocol (kNN k=20 and a linear probe on
a fixed stratified 20% holdout).

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python benchmarks/tabular_timeseries.py [--only NAME ...] [--methods NAME ...] [--labels 5]

Prints a Markdown table per modality and a final ``RESULT {json}`` line. With ``--labels
N``, each run also trains classifiers from N labels per class (``selfsup.tasks.finetune``):
a linear head, the same with FixMatch on the unlabelled rest, and the network from scratch.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings

from selfsup import modalities
from selfsup.config import PretrainConfig
from selfsup.data import model_input
from selfsup.evaluate.protocols import evaluate_embeddings
from selfsup.tasks.finetune import finetune
from selfsup.tasks import pretrain
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
    ("GunPoint", "ts2vec", dict(epochs=20, batch_size=32)),
    ("ItalyPowerDemand", "simclr", dict(epochs=10, batch_size=128)),
    ("ItalyPowerDemand", "ts2vec", dict(epochs=10, batch_size=64)),
    ("BasicMotions", "simclr", dict(epochs=40, batch_size=32)),
    ("JapaneseVowels", "simclr", dict(epochs=10, batch_size=128)),
    ("JapaneseVowels", "masked_series", dict(epochs=10, batch_size=128)),
]


def raw_features(config: PretrainConfig) -> tuple[str, dict]:
    """The modality, and kNN and linear top-1 on the standardised raw inputs, flattened:
    no model at all."""
    source, train, test = prepare_data(config)
    mean, std = modalities.get(source.modality).statistics(source.samples)
    flat = [model_input(part.samples, mean, std).flatten(1) for part in (train, test)]
    return source.modality, evaluate_embeddings(flat[0], train.labels, flat[1], test.labels, knn_k=config.knn_k)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="datasets to run (default: all)")
    parser.add_argument("--methods", nargs="*", help="methods to run (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--labels", type=int, help="also fine-tune from this many labels per class")
    parser.add_argument("--steps", type=int, default=200, help="fine-tuning steps (with --labels)")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}; torch threads: OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as directory, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for data, method, options in RUNS:
            if (args.only and data not in args.only) or (args.methods and method not in args.methods):
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
            if args.labels:
                linear = finetune(config.out, args.labels, mode="linear", steps=args.steps, scratch=True, seed=args.seed)
                fixmatch = finetune(config.out, args.labels, mode="linear", pseudo_label=True, steps=args.steps,
                                    seed=args.seed)
                r.update(few_linear=linear["test_accuracy"], few_fixmatch=fixmatch["test_accuracy"],
                         few_scratch=linear["scratch_test_accuracy"], labelled=linear["labelled"])
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
    if args.labels:
        print(f"\nfew labels ({args.labels} per class, {args.steps} steps)\n\n| dataset | method | labelled | linear "
              "| linear + FixMatch | scratch (full) |\n|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['data']} | {r['method']} | {r['labelled']} | {r['few_linear']:.3f} | {r['few_fixmatch']:.3f} "
                  f"| {r['few_scratch']:.3f} |")
    print(f"\nload average at end: {os.getloadavg()}")
    print("RESULT " + json.dumps(rows))


if __name__ == "__main__":
    main()
