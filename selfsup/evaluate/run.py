"""Re-evaluate a run's last checkpoint, on its own data or on another labelled source."""

from __future__ import annotations

import dataclasses
import os

from selfsup.config import ConfigError, PretrainConfig
from selfsup.devices import Placement
from selfsup.evaluate.protocols import embed_splits, evaluate_embeddings
from selfsup.evaluate.suite import evaluate_all
from selfsup.runs import Run, evaluation_rows, protocol


def evaluate_run(run_dir: str | os.PathLike, data: str | None = None, knn_k: int | None = None,
                 full: bool = True, accelerator: str | None = None, devices: str | None = None) -> dict:
    """The run summary's numbers (kNN top-1, linear top-1, RankMe) for the run's backbone and
    the same backbone with random weights, on the run's own holdout split or on ``data``'s;
    with ``full``, every protocol of ``evaluate_all`` for both as well. Embeds on
    ``accelerator``/``devices`` (default: the run's device and precision where this machine
    has it, else the CPU)."""
    if knn_k is not None and (isinstance(knn_k, bool) or not isinstance(knn_k, int) or knn_k < 1):
        raise ConfigError(f"knn_k={knn_k!r}: expected an integer >= 1")
    run = Run(run_dir)
    method = run.method()
    where = run.placement(accelerator, devices)
    config = dataclasses.replace(run.config, data=data or run.config.data,
                                 knn_k=run.config.knn_k if knn_k is None else knn_k)
    source, train, test = run.data(config.data)
    result = {"run": str(run_dir), "data": config.data, "method": config.method,
              "protocol": protocol(config), "placement": str(where),
              "evaluation_train_samples": evaluation_size(len(train))}
    for name, model in (("pretrained", method), ("random_weights", run.method(weights=False))):
        prefix = "" if name == "pretrained" else "baseline_"
        scores = evaluate_model(model, train, test, config, where, full=full)
        if full:
            result[name] = scores.pop("all")
        result.update({prefix + k: v for k, v in scores.items()})
    return result


def evaluate_model(model, train, test, config: PretrainConfig, where: Placement, full: bool = False) -> dict:
    """The summary's numbers of ``model`` (a method, or any module as ``embed_images`` takes):
    kNN and linear top-1 on ``test`` (None: no test part), RankMe of ``train``; with ``full``,
    every protocol of ``evaluate_all`` under ``"all"``. Training rows past ``EVAL_TRAIN_ROWS``
    are subsampled first (``selfsup.runs.evaluation_rows``), so they are not even embedded."""
    rows = evaluation_rows(len(train))
    if rows is not None:
        train = train.subset(rows)
    train_embeddings, test_embeddings = embed_splits(model, train, test, config.mean, config.std, where)
    test_labels = None if test is None else test.labels
    scores = evaluate_embeddings(train_embeddings, train.labels, test_embeddings, test_labels, config.knn_k)
    if full:
        scores["all"] = evaluate_all(train_embeddings, train.labels, test_embeddings, test_labels)
    return scores


def evaluation_size(train_samples: int) -> int:
    """How many training rows evaluation uses (the summary's ``evaluation_train_samples``)."""
    rows = evaluation_rows(train_samples)
    return train_samples if rows is None else len(rows)
