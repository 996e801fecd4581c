"""One object per modality (image, table, time series) that knows what differs between
them: which files hold its data and how they load, the statistics its inputs are
standardised with, its default backbone, which training switches help it, its views per
recipe, FixMatch's weak and strong views, its test-time corruptions and its report
thumbnail. Code elsewhere asks ``modalities.get(source.modality)`` instead of testing names
or dtypes, and opens data with ``open_source``; a new modality is one new file here (plus
its loader in ``selfsup.data``, which registers its built-in datasets).
"""

from __future__ import annotations

from pathlib import Path

from selfsup.data.arrays import array_kind
from selfsup.data.base import BUILTIN_DATASETS, DataError
from selfsup.modalities.base import MODALITIES, Modality, register
from selfsup.modalities import image, table, timeseries  # noqa: F401  (each registers itself and its built-ins)


def get(name: str) -> Modality:
    if name not in MODALITIES:
        raise ValueError(f"unknown modality {name!r}; known: {', '.join(MODALITIES)}")
    return MODALITIES[name]


def open_source(spec: str, image_size: int | None = None, label_column: str | None = None, cache_dir=None,
                modality: str | None = None, data_mode: str = "memory"):
    """The data source ``spec``: a built-in dataset, or a file or folder that one modality
    accepts (an image folder, read through the decoded-image cache in ``cache_dir`` when
    given, or streamed with ``data_mode`` stream or auto (``Image.load``); an integer array
    of images; a CSV/Parquet table; a ``.ts`` file or a float array of series).
    ``modality`` (image, table, timeseries) reads it as that modality's data; without it an
    array that could be images or series (``selfsup.data.arrays``) is refused."""
    if modality is not None and modality not in MODALITIES:
        raise DataError(f"modality={modality!r}: expected one of {', '.join(MODALITIES)}")
    if spec in BUILTIN_DATASETS:
        dataset = BUILTIN_DATASETS[spec]
        if modality is not None and dataset.modality != modality:
            raise DataError(f"{spec}: a built-in {dataset.modality} dataset, not {modality} data")
        return dataset.load(image_size)
    path = Path(spec).expanduser()
    if not path.exists() and not ("{" in spec and ".tar" in spec):  # a brace pattern names shards
        raise DataError(f"{spec}: no such file or folder, and not a built-in dataset "
                        f"(built-in: {', '.join(BUILTIN_DATASETS)})")
    chosen = MODALITIES[modality] if modality is not None else None
    if chosen is not None and path.is_file() and path.suffix in (".npy", ".npz"):  # what the array holds is a guess
        return chosen.load(path, image_size=image_size, label_column=label_column, cache_dir=cache_dir,
                                 data_mode=data_mode)
    for candidate in MODALITIES.values():
        if candidate.accepts(path):
            if chosen is not None and candidate is not chosen:
                raise DataError(f"{spec}: {candidate.name} data, not {modality}")
            return candidate.load(path, image_size=image_size, label_column=label_column, cache_dir=cache_dir,
                                 data_mode=data_mode)
    if path.is_file() and path.suffix in (".npy", ".npz"):
        kind, described = array_kind(path)
        if kind == "ambiguous":
            raise DataError(f"{spec}: {described}; pass --modality image or --modality timeseries")
    formats = [f for m in MODALITIES.values() for f in m.formats]
    raise DataError(f"{spec}: not {', '.join(formats[:-1])} or {formats[-1]}")


__all__ = ["BUILTIN_DATASETS", "MODALITIES", "Modality", "get", "open_source", "register"]
