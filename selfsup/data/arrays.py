"""Which modality a ``.npy``/``.npz`` array holds, read from its header (dtype, shape and,
in an ``.npz``, the array's name) without loading it.

- an array named ``images`` (in an ``.npz``) holds images, one named ``series`` holds
  time series;
- an integer array (uint8, uint16) holds images;
- a float array of rank 2, (N, T), holds series; of rank 4 images, (N, H, W, C) or
  (N, C, H, W) with values in [0, 1];
- a float array of rank 3, (N, A, B), holds series of A channels and B steps, unless it
  could as well be N greyscale images of A x B pixels: when A == B >= 8 (square frames)
  or A > 64 (more channels than series usually have). Such an array is *ambiguous*:
  ``open_source`` refuses it unless told the modality (``--modality image|timeseries``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LABEL_KEYS = ("labels", "y", "targets")
MAX_SERIES_CHANNELS = 64


def _header(path: Path):
    """(name or None, dtype, shape) of the samples array of a .npy/.npz file, or None."""
    try:
        if path.suffix == ".npy":
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            return None, array.dtype, array.shape
        with np.load(path, allow_pickle=False) as archive:
            keys = [k for k in archive.keys() if k not in LABEL_KEYS]
            key = next((k for k in ("images", "series", "x", "X", "data") if k in keys),
                       keys[0] if len(keys) == 1 else None)
            if key is None:
                return None
            array = archive[key]
            return key, array.dtype, array.shape
    except Exception:
        return None


def array_kind(path: Path) -> tuple[str | None, str]:
    """("image" | "timeseries" | "ambiguous" | None, a description of the array) of an
    array file; None when unreadable or neither (its loader then says what is wrong)."""
    header = _header(path)
    if header is None:
        return None, "unreadable"
    key, dtype, shape = header
    described = f"a {dtype} array of shape {tuple(shape)}"
    if key == "images":
        return "image", described
    if key == "series":
        return "timeseries", described
    if dtype.kind in "ui":
        return "image", described
    if dtype.kind != "f":
        return None, described
    if len(shape) == 2:
        return "timeseries", described
    if len(shape) == 4:
        return "image", described
    if len(shape) == 3:
        a, b = shape[1:]
        if (a == b >= 8) or a > MAX_SERIES_CHANNELS:
            return "ambiguous", (f"{described}: {shape[0]} greyscale images of {a} x {b} px, or {shape[0]} "
                                 f"series of {a} channels and {b} steps")
        return "timeseries", described
    return None, described
