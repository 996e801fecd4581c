"""Every method learns: a short pretrain of each method on ``digits`` with one shared
budget, beside the same backbone with random weights.

    .venv/bin/python benchmarks/methods_digits.py [--epochs 5] [--batch-size 64] [METHOD ...]

Prints one line per method and a final ``RESULT {json}`` line (method -> summary numbers).
The backbone is smallcnn, or the method's own default (a ViT for MAE and I-JEPA).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings

from selfsup import backbones, methods
from selfsup.config import PretrainConfig
from selfsup.methods import METHODS
from selfsup.tasks import pretrain

KEYS = ("knn_top1", "baseline_knn_top1", "linear_top1", "rankme", "seconds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("methods", nargs="*", default=list(METHODS), help="methods (default: all)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"digits, {args.image_size} px, epochs={args.epochs}, batch_size={args.batch_size}, "
          f"seed={args.seed}, each method's default optimizer and lr")
    print(f"{'method':<12} {'backbone':<9} {'batch':>5} " + " ".join(f"{k:>17}" for k in KEYS), flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as directory, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in args.methods:
            backbone = METHODS[name].default_backbone or "smallcnn"
            # W-MSE whitens batches of more samples than its embedding has dimensions: the
            # smallest power of two that a method takes, where the shared batch is too small
            needed = methods.create(name, backbones.create(backbone, image_size=args.image_size)).min_batch_size
            batch_size = max(args.batch_size, 1 << (needed - 1).bit_length())
            summary = pretrain(PretrainConfig(
                data="digits", method=name, out=f"{directory}/{name}", epochs=args.epochs,
                batch_size=batch_size, image_size=args.image_size, backbone=backbone,
                seed=args.seed))
            results[name] = {"batch_size": batch_size, **{k: summary[k] for k in KEYS}}
            print(f"{name:<12} {backbone:<9} {batch_size:>5} " + " ".join(f"{summary[k]:>17.3f}" for k in KEYS),
                  flush=True)
    print("RESULT " + json.dumps({"epochs": args.epochs, "batch_size": args.batch_size,
                                  "image_size": args.image_size, "methods": results}))


if __name__ == "__main__":
    main()
