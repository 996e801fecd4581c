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

from selfsup.data.base import BUILTIN_DATASETS, DataError
from selfsup.modalities.base import MODALITIES, Modality, register
from selfsup.modalities import image, table, timeseries  # noqa: F401  (each registers itself and its built-ins)


def get(name: str) -> Modality:
    if name not in MODALITIES:
        raise ValueError(f"unknown modality {name!r}; known: {', '.join(MODALITIES)}")
    return MODALITIES[name]


def open_source(spec: str, image_size: int | None = None, label_column: str | None = None, cache_dir=None,
                data_mode: str = "memory"):
    """The data source ``spec``: a built-in dataset, or a file or folder that one modality
    accepts (an image folder, read through the decoded-image cache in ``cache_dir`` when
    given, or streamed with ``data_mode`` stream or auto (``Image.load``); a uint8 array of
    images; a CSV/Parquet table; a ``.ts`` file or a float array of series)."""
    if spec in BUILTIN_DATASETS:
        return BUILTIN_DATASETS[spec].load(image_size)
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(f"{spec}: no such file or folder, and not a built-in dataset "
                        f"(built-in: {', '.join(BUILTIN_DATASETS)})")
    for modality in MODALITIES.values():
        if modality.accepts(path):
            return modality.load(path, image_size=image_size, label_column=label_column, cache_dir=cache_dir,
                                 data_mode=data_mode)
    formats = [f for m in MODALITIES.values() for f in m.formats]
    raise DataError(f"{spec}: not {', '.join(formats[:-1])} or {formats[-1]}")


__all__ = ["BUILTIN_DATASETS", "MODALITIES", "Modality", "get", "open_source", "register"]
