"""What every data source shares: the error of an unusable source, the registry of built-in
datasets (each modality's module registers its own), and the fixed holdout split."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from selfsup.errors import DataError  # noqa: F401  (raised here, defined below every layer)


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    modality: str
    size: int
    has_labels: bool
    description: str
    load: object  # load(image_size) -> source


BUILTIN_DATASETS: dict[str, BuiltinDataset] = {}


def register_dataset(dataset: BuiltinDataset) -> BuiltinDataset:
    BUILTIN_DATASETS[dataset.name] = dataset
    return dataset


def holdout_split(source, fraction: float, seed: int = 0):
    """Fixed split into (train, test); stratified by label. Without labels, no test part."""
    if source.labels is None or fraction <= 0:
        return source, None
    from sklearn.model_selection import train_test_split

    index = np.arange(len(source))
    labels = source.labels.numpy()
    classes, counts = np.unique(labels, return_counts=True)
    tested = math.ceil(fraction * len(index))
    if len(index) - tested < 2:
        raise DataError(f"holdout={fraction}: {len(index)} labelled sample(s) leave {len(index) - tested} to train "
                        f"on; need at least 2 (more data, a smaller --holdout, or --holdout 0)")
    if len(classes) < 2:
        raise DataError(f"holdout={fraction}: the labels hold one class ({classes[0]!r}), so there is nothing to "
                        f"evaluate; give labels of at least 2 classes or --holdout 0")
    stratify = labels if counts.min() >= 2 and len(classes) <= min(tested, len(index) - tested) else None
    train, test = train_test_split(index, test_size=fraction, random_state=seed, stratify=stratify)
    kept = np.unique(labels[train])
    if len(kept) < 2:  # too few of each class to stratify, and the draw left one class to train on
        raise DataError(f"holdout={fraction}: the {len(train)} training samples left by the split hold one class "
                        f"({kept[0]!r}); a linear probe needs two (more data, a smaller --holdout, or --holdout 0)")
    return source.subset(np.sort(train)), source.subset(np.sort(test))
