"""Curation on an artificially imbalanced digits set is more balanced than random."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from selfsup.config import ConfigError
from selfsup.tasks import curate as curate_module
from selfsup.tasks.curate import HierarchicalCurator, class_entropy, members_of, resampled_kmeans, split_budget


def test_split_budget_is_balanced_within_capacities():
    rng = np.random.default_rng(0)
    assert split_budget(30, [100, 100, 100], rng) == [10, 10, 10]
    assert split_budget(30, [2, 100, 100], rng) == [2, 14, 14]
    assert split_budget(500, [2, 3], rng) == [2, 3]
    assert sum(split_budget(2, [5, 5, 5], rng)) == 2


def imbalanced_digits(seed=0):
    """Class c keeps about 180 / 1.6^c samples: 180 of the zeros, 3 of the nines."""
    digits = load_digits()
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.permutation(np.flatnonzero(digits.target == c))[:max(3, int(180 / 1.6 ** c))]
                           for c in range(10)])
    return digits.data[keep].astype(np.float32), digits.target[keep]


def test_curated_subset_is_more_balanced_than_random():
    x, labels = imbalanced_digits()
    curator = HierarchicalCurator(levels=(40, 8)).fit(x)
    selected = curator.select(100)
    assert len(selected) == 100 and len(np.unique(selected)) == 100
    random = np.random.default_rng(0).choice(len(x), 100, replace=False)
    curated, baseline = class_entropy(labels[selected]), class_entropy(labels[random])
    assert curated > baseline + 0.1, (curated, baseline)
    with pytest.raises(ConfigError, match="budget=0"):
        curator.select(0)
    with pytest.raises(ConfigError, match="levels=\\(8, 40\\)"):
        HierarchicalCurator(levels=(8, 40)).fit(x)


def test_curate_command_writes_ids(digits_run, tmp_path, capsys):
    from selfsup.cli import run

    run(["curate", str(digits_run), "--budget", "200", "--out", str(tmp_path / "ids.txt")])
    out = capsys.readouterr().out
    assert '"class_entropy_curated"' in out
    ids = (tmp_path / "ids.txt").read_text().split()
    assert len(ids) == 200 and len(set(ids)) == 200


def test_kmeans_fits_on_a_sample_and_assigns_everything(monkeypatch):
    monkeypatch.setattr(curate_module, "FIT_PER_CLUSTER", 10)  # 20 clusters fitted on 200 of 2000 points
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(20, 8)) * 6)[rng.integers(0, 20, 2000)] + rng.normal(size=(2000, 8))
    x = x.astype(np.float32)
    centroids, assignment = resampled_kmeans(x, 20, resample_steps=2)
    assert centroids.shape == (20, 8) and assignment.shape == (2000,)
    nearest = ((x[:, None] - centroids[None]) ** 2).sum(axis=2).argmin(axis=1)
    assert (assignment == nearest).mean() > 0.999  # float ties aside, every point to its nearest
    groups = members_of(assignment, 20)
    assert sum(map(len, groups)) == 2000 and all((assignment[g] == c).all() for c, g in enumerate(groups))
