"""benchmarks/timeseries_protocol.py's classifier is TS2Vec's ``fit_svm`` (tasks/_eval_protocols.py):
an RBF SVM with C = inf and no search on small training sets, else C by 5-fold grid search."""

import importlib.util
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("timeseries_protocol", ROOT / "benchmarks" / "timeseries_protocol.py")
protocol = importlib.util.module_from_spec(spec)
spec.loader.exec_module(protocol)


def test_small_training_sets_get_c_inf_without_a_search():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 20)  # 40 samples: under 50, no search
    features = rng.normal(size=(40, 3)) + labels[:, None] * 3
    model, c = protocol.fit_svm(features, labels)
    assert c is None and model.C == np.inf and model.kernel == "rbf" and model.gamma == "scale"
    labels = np.repeat(np.arange(15), 4)  # 60 samples, 4 a class: N // classes < 5, no search
    assert protocol.fit_svm(rng.normal(size=(60, 3)), labels)[1] is None


def test_larger_training_sets_pick_c_by_cross_validation():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 40)
    noisy = rng.normal(size=(80, 5)) + labels[:, None] * 0.8  # overlapping classes: a finite C fits best
    model, c = protocol.fit_svm(noisy, labels)
    assert c in protocol.C_GRID and model.C == c
    assert protocol.C_GRID == [1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100, 1000, 10000, np.inf]


def test_the_references_step_count():
    assert protocol.paper_steps(50 * 150) == 200 and protocol.paper_steps(100_000) == 200
    assert protocol.paper_steps(100 * 1460) == 600
