"""Time series under TS2Vec's classification protocol (Yue et al. 2022, sec. 4.1 and the
reference code's ``train.py --eval`` with ``tasks/classification.py``): pretrain on the
archive's TRAIN split only, embed TRAIN and TEST with the frozen encoder (instance
representation: the maximum over time of the per-step features), fit an SVM with an RBF
kernel on the TRAIN representations, with C picked by 5-fold cross-validation from
{1e-4, ..., 1e4, inf} (no search when a class has under 5 samples or TRAIN under 50, C = inf,
as the reference's ``fit_svm``), and report accuracy on TEST.

Every representation gets the same classifier:

- ``ts2vec``: ``selfsup pretrain --method ts2vec`` on the TRAIN file with the paper's settings
  (batch 8, AdamW lr 1e-3 constant, i.e. ``--lr 0.032`` per 256, 320-d output, 64 wide,
  10 blocks, 200 optimizer steps, 600 when TRAIN holds over 100,000 values), embedded with the
  weight-averaged encoder (what ``selfsup embed`` writes);
- ``random``: the same encoder with its initial weights (``Run.method(weights=False)``);
- ``minirocket``: aeon's MiniRocket transform (Dempster et al. 2021, ~10k features), fitted on
  TRAIN: a strong representation that learns nothing;
- ``raw``: the standardised series, flattened;
- ``simclr`` (``--simclr``): ``selfsup pretrain --method simclr`` on TRAIN with the series
  recipe and its default ``resnet1d_small``, batch 32 (all of TRAIN if smaller), 30 epochs
  (``--simclr-epochs``), and that backbone with random weights.

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python benchmarks/timeseries_protocol.py [--only NAME ...] [--simclr [NAME ...]]

One thread: on a loaded 2-core machine two OpenMP threads per process made a TS2Vec step
cost 30x the CPU time of one (threads spinning on each other). Prints a Markdown table beside the accuracies the TS2Vec paper reports (see ``PAPER``) and a
final ``RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
import warnings

import numpy as np

from selfsup.config import PretrainConfig
from selfsup.data.samples import model_input
from selfsup.evaluate.protocols import embed_images
from selfsup.runs import Run
from selfsup.tasks import pretrain
from selfsup.tasks.common import open_run_source

# (name, archive): UCR univariate and UEA multivariate sets that aeon's wheel ships
DATASETS = [("GunPoint", "UCR"), ("ItalyPowerDemand", "UCR"), ("ArrowHead", "UCR"), ("OSULeaf", "UCR"),
            ("BasicMotions", "UEA"), ("JapaneseVowels", "UEA")]

# The TS2Vec paper's accuracy per dataset. The paper's own appendix tables (arXiv 2106.10466,
# "full results" on 128 UCR / 30 UEA sets) could not be read from this machine; the UCR figures
# below are the "TS2Vec" column of Table 14 of Sun et al., "TEST: Text Prototype Aligned
# Embedding to Activate LLM's Ability for Time Series", ICLR 2024, which quotes the published
# results (its T-Loss and TNC columns average 0.806 and 0.761, as in the TS2Vec paper's Table 1).
# None: no figure found (printed "n/a"), never a guess.
PAPER = {"GunPoint": 0.987, "ItalyPowerDemand": 0.960, "ArrowHead": 0.817, "OSULeaf": 0.843,
         "BasicMotions": None, "JapaneseVowels": None}
PAPER_SOURCE = ("UCR: 'TS2Vec' column of Table 14 in Sun et al. (ICLR 2024), quoting TS2Vec's results; "
                "UEA: n/a (not found)")

C_GRID = [1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100, 1000, 10000, np.inf]


def fit_svm(features: np.ndarray, labels: np.ndarray, seed: int = 0):
    """TS2Vec's evaluation classifier: an RBF SVM (gamma 'scale'), C by 5-fold grid search
    over ``C_GRID``, or C = inf without a search when TRAIN is under 50 samples or some class
    would have fewer than 5 samples per fold (the reference's rule: N // classes < 5)."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.svm import SVC

    classes = len(np.unique(labels))
    if len(features) // classes < 5 or len(features) < 50:
        return SVC(C=np.inf, gamma="scale").fit(features, labels), None
    search = GridSearchCV(SVC(kernel="rbf", gamma="scale"), {"C": C_GRID},
                          cv=StratifiedKFold(5, shuffle=False), n_jobs=1)
    search.fit(features, labels)
    return search.best_estimator_, search.best_params_["C"]


def svm_accuracy(train: np.ndarray, train_labels, test: np.ndarray, test_labels) -> tuple[float, float | None]:
    model, c = fit_svm(np.asarray(train, dtype=np.float64), train_labels)
    return float(model.score(np.asarray(test, dtype=np.float64), test_labels)), c


def class_names(source) -> np.ndarray:
    """Each sample's class name (index -> name through the file's own class list, so that the
    TRAIN and TEST files agree whatever classes each holds)."""
    return np.asarray(source.classes)[np.asarray(source.labels)]


def paper_steps(train_values: int) -> int:
    """The reference's default iterations: 200, or 600 when TRAIN holds over 100,000 values."""
    return 200 if train_values <= 100_000 else 600


def embeddings(run_dir: str, path: str, weights: bool = True) -> np.ndarray:
    """(N, D) representations of the series in ``path`` from the run's method (its ``embed``:
    TS2Vec's averaged encoder), or from the same architecture with its initial weights."""
    run = Run(run_dir)
    source = open_run_source(path, run.config)
    return embed_images(run.method(weights=weights), source.samples, run.config.mean, run.config.std).numpy()


def minirocket_features(train_samples: np.ndarray, test_samples: np.ndarray, seed: int):
    from aeon.transformations.collection.convolution_based import MiniRocket

    transform = MiniRocket(random_state=seed).fit(train_samples)
    return transform.transform(train_samples), transform.transform(test_samples)


def run_dataset(name: str, archive: str, directory: str, seed: int, simclr: bool, simclr_epochs: int = 30) -> dict:
    train_path, test_path = f"{name}_TRAIN", f"{name}_TEST"  # the built-in archive splits (aeon's files)
    config = PretrainConfig(data=train_path, method="ts2vec", holdout=0.0, seed=seed, report=False,
                            out=f"{directory}/{name}-ts2vec", batch_size=8, lr=1e-3 * 256 / 8)
    train_source = open_run_source(train_path, config)
    n, channels, length = train_source.samples.shape
    steps = paper_steps(n * channels * length)
    batch = min(8, n)
    epochs = math.ceil(steps / (n // batch))
    config = PretrainConfig(**{**config.to_dict(), "batch_size": batch, "epochs": epochs, "max_steps": steps})
    started = time.time()
    pretrain(config)
    seconds = time.time() - started
    run = Run(config.out)
    train_source, test_source = (open_run_source(p, run.config) for p in (train_path, test_path))
    y_train, y_test = class_names(train_source), class_names(test_source)
    row = dict(data=name, archive=archive, train=n, test=len(test_source.samples), channels=channels,
               length=length, steps=steps, batch=batch, ts2vec_seconds=round(seconds, 1), paper=PAPER.get(name))
    row["ts2vec"], row["ts2vec_C"] = svm_accuracy(embeddings(config.out, train_path), y_train,
                                                  embeddings(config.out, test_path), y_test)
    row["random"], row["random_C"] = svm_accuracy(embeddings(config.out, train_path, weights=False), y_train,
                                                  embeddings(config.out, test_path, weights=False), y_test)
    mean, std = run.config.mean, run.config.std
    raw = [model_input(s.samples, mean, std).flatten(1).numpy() for s in (train_source, test_source)]
    row["raw"], row["raw_C"] = svm_accuracy(raw[0], y_train, raw[1], y_test)
    started = time.time()
    features = minirocket_features(train_source.samples.numpy(), test_source.samples.numpy(), seed)
    row["minirocket"], row["minirocket_C"] = svm_accuracy(features[0], y_train, features[1], y_test)
    row["minirocket_seconds"] = round(time.time() - started, 1)
    if simclr:
        out = f"{directory}/{name}-simclr"
        started = time.time()
        pretrain(PretrainConfig(data=train_path, method="simclr", holdout=0.0, seed=seed, report=False, out=out,
                                batch_size=min(32, n), epochs=simclr_epochs))
        row["simclr_seconds"], row["simclr_epochs"] = round(time.time() - started, 1), simclr_epochs
        row["simclr"], row["simclr_C"] = svm_accuracy(embeddings(out, train_path), y_train,
                                                      embeddings(out, test_path), y_test)
        row["simclr_random"], _ = svm_accuracy(embeddings(out, train_path, weights=False), y_train,
                                               embeddings(out, test_path, weights=False), y_test)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="datasets to run (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--simclr-epochs", type=int, default=30, help="SimCLR's epochs (batch 32 or all of TRAIN)")
    parser.add_argument("--simclr", nargs="*", help="also SimCLR (resnet1d_small) on TRAIN, on these datasets "
                                                    "(no names: on all)")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
          flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as directory, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, archive in DATASETS:
            if args.only and name not in args.only:
                continue
            simclr = args.simclr is not None and (not args.simclr or name in args.simclr)
            rows.append(run_dataset(name, archive, directory, args.seed, simclr, args.simclr_epochs))
            print(json.dumps(rows[-1]), flush=True)

    def cell(value):
        return "n/a" if value is None else f"{value:.3f}"

    with_simclr = any("simclr" in r for r in rows)
    extra = " | SimCLR (random) |" if with_simclr else " |"
    print(f"\nSVM (RBF, C by 5-fold CV) on TEST; paper: {PAPER_SOURCE}\n")
    print("| dataset | archive | train / test | C x T | steps | TS2Vec (ours) | paper | random weights | MiniRocket "
          f"| raw{extra}\n|---|---|---|---|---|---|---|---|---|---|" + ("---|" if with_simclr else ""))
    for r in rows:
        simclr = (f" {cell(r['simclr'])} ({cell(r['simclr_random'])}) |" if "simclr" in r else " - |") \
            if with_simclr else ""
        print(f"| {r['data']} | {r['archive']} | {r['train']} / {r['test']} | {r['channels']} x {r['length']} | "
              f"{r['steps']} | {cell(r['ts2vec'])} | {cell(r['paper'])} | {cell(r['random'])} | "
              f"{cell(r['minirocket'])} | {cell(r['raw'])} |{simclr}")
    print(f"\nload average at end: {os.getloadavg()}")
    print("RESULT " + json.dumps(rows))


if __name__ == "__main__":
    main()
