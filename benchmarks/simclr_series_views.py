"""Why SimCLR can fall below random weights on a small series set: the same SimCLR run as in
``timeseries_protocol.py --simclr`` (TRAIN only, resnet1d_small, batch 32, 30 epochs, RBF SVM
with C by 5-fold CV, TEST accuracy), once per smallest window-slice scale of the series views
(``--crop-min-scale``: 0.5, the recipe's, stretches a window of half the series back to full
length; 0.9 keeps the timing of events nearly intact), beside the backbone with random weights.

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python benchmarks/simclr_series_views.py [--data GunPoint] [--scales 0.5 0.9]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings

from selfsup.config import PretrainConfig
from selfsup.tasks import pretrain
from selfsup.tasks.common import open_run_source
from timeseries_protocol import class_names, embeddings, svm_accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="GunPoint")
    parser.add_argument("--scales", nargs="*", type=float, default=[0.5, 0.9])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}", flush=True)
    train_path, test_path = f"{args.data}_TRAIN", f"{args.data}_TEST"
    rows = []
    with tempfile.TemporaryDirectory() as directory, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for scale in args.scales:
            out = f"{directory}/simclr-{scale}"
            config = PretrainConfig(data=train_path, method="simclr", holdout=0.0, seed=args.seed, report=False,
                                    out=out, batch_size=32, epochs=args.epochs, crop_min_scale=scale)
            n = len(open_run_source(train_path, config).samples)
            config = PretrainConfig(**{**config.to_dict(), "batch_size": min(32, n)})
            started = time.time()
            pretrain(config)
            seconds = round(time.time() - started, 1)
            sources = [open_run_source(p, config) for p in (train_path, test_path)]
            y_train, y_test = (class_names(s) for s in sources)
            trained, _ = svm_accuracy(embeddings(out, train_path), y_train, embeddings(out, test_path), y_test)
            random, _ = svm_accuracy(embeddings(out, train_path, weights=False), y_train,
                                     embeddings(out, test_path, weights=False), y_test)
            rows.append(dict(data=args.data, crop_min_scale=scale, epochs=args.epochs, simclr=trained,
                             random=random, seconds=seconds))
            print(json.dumps(rows[-1]), flush=True)
    print("\n| data | smallest window | SimCLR | random weights |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['data']} | {r['crop_min_scale']} | {r['simclr']:.3f} | {r['random']:.3f} |")
    print(f"\nload average at end: {os.getloadavg()}")
    print("RESULT " + json.dumps(rows))


if __name__ == "__main__":
    main()
