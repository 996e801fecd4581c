"""Evaluation keeps its training rows bounded, by the rule its protocol text states."""

import numpy as np
import torch

from selfsup import runs
from selfsup.config import PretrainConfig
from selfsup.data.samples import FloatSource
from selfsup.devices import CPU
from selfsup.evaluate import run as run_module
from selfsup.evaluate.suite import PROTOCOLS, evaluate_all


def labelled(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    x = torch.tensor(np.eye(3)[labels] * 3 + rng.normal(size=(n, 3)), dtype=torch.float32)
    return FloatSource("t", x, [f"r{i}" for i in range(n)], torch.tensor(labels))


def test_training_rows_past_the_limit_are_subsampled_before_embedding(monkeypatch):
    monkeypatch.setattr(runs, "EVAL_TRAIN_ROWS", 40)
    train, test = labelled(100, 0), labelled(30, 1)
    seen = []

    def embed(model, train_part, test_part, mean, std, where):
        seen.append(list(train_part.ids))
        return train_part.samples, test_part.samples

    monkeypatch.setattr(run_module, "embed_splits", embed)
    scores = run_module.evaluate_model(None, train, test, PretrainConfig(data="digits", knn_k=5), CPU, full=True)
    rows = runs.evaluation_rows(100)
    assert seen == [[f"r{i}" for i in rows]] and len(rows) == 40 and (np.diff(rows) > 0).all()
    assert (runs.evaluation_rows(100) == rows).all() and runs.evaluation_rows(40) is None  # fixed; all when few
    assert scores["knn_top1"] > 0.8 and scores["all"]["linear"]["top1"] > 0.8
    assert run_module.evaluation_size(100) == 40 and run_module.evaluation_size(39) == 39
    assert "at most 40 training rows (uniform random, seed 0)" in runs.protocol(PretrainConfig(data="digits"))
    assert "at most 50,000 train rows" in PROTOCOLS["knn"] and "at most 50,000 train rows" in PROTOCOLS["linear"]


def test_evaluate_all_applies_the_same_rule(monkeypatch):
    monkeypatch.setattr(runs, "EVAL_TRAIN_ROWS", 40)
    train, test = labelled(100, 0), labelled(30, 1)
    calls = []
    real = __import__("selfsup.evaluate.suite", fromlist=["knn_predict_many"]).knn_predict_many

    def spy(bank, labels, queries, ks):
        calls.append(len(bank))
        return real(bank, labels, queries, ks)

    monkeypatch.setattr("selfsup.evaluate.suite.knn_predict_many", spy)
    result = evaluate_all(train.samples, train.labels, test.samples, test.labels)
    assert calls == [40] and result["knn"]["top1"]["10"] > 0.8
