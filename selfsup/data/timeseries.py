"""Time-series sources: float ``.npy``/``.npz`` arrays, UCR/UEA ``.ts`` files, and the
UCR/UEA archive datasets that ship inside the aeon wheel.

Samples are (N, C, T) float32. Series of unequal length (a ``.ts`` file without
``@equalLength true``, or rows of an array that end in NaN) are resampled by linear
interpolation to the longest length, so that every batch is one dense tensor and every
augmentation stays a batched op; ``source.features`` names the channels and a warning
says how many series were stretched. Missing values inside a series ('?' in ``.ts``, NaN in
arrays) are filled by linear interpolation between their neighbours and counted.

The built-in archive datasets join the archive's TRAIN and TEST files; evaluation then
uses selfsup's own stratified holdout, not the archive's split. They are read straight
from aeon's installed files with our own ``.ts`` reader: aeon itself (and numba) is
never imported, only located (``pip install 'selfsup[timeseries]'`` installs it).
"""

from __future__ import annotations

import importlib.util
import dataclasses
import warnings
from pathlib import Path

import numpy as np
import torch

from selfsup.data.samples import FloatSource, labels_from_values
from selfsup.data.base import BuiltinDataset, DataError, register_dataset


def fill_and_resample(series: list[np.ndarray], length: int | None = None) -> tuple[np.ndarray, int, int]:
    """(C, T_i) arrays with NaN gaps/trailing NaN -> one (N, C, length) array; also returns
    the number of series stretched and of values filled."""
    lengths = []
    for s in series:
        valid = np.isfinite(s).any(axis=0)
        lengths.append(int(np.flatnonzero(valid)[-1]) + 1 if valid.any() else 0)
    length = length or max(lengths)
    out = np.empty((len(series), series[0].shape[0], length), dtype=np.float32)
    stretched = filled = 0
    for i, (s, n) in enumerate(zip(series, lengths)):
        if n == 0:
            raise ValueError(f"series {i} holds no value")
        stretched += n != length
        target = np.linspace(0, n - 1, length)
        for c, channel in enumerate(s[:, :n]):
            known = np.isfinite(channel)
            if not known.any():
                raise ValueError(f"series {i}, channel {c} holds no value")
            filled += int((~known).sum())
            out[i, c] = np.interp(target, np.flatnonzero(known), channel[known])
    return out, stretched, filled


def _report(name: str, stretched: int, filled: int, length: int) -> None:
    if stretched or filled:
        warnings.warn(f"{name}: {stretched} series of unequal length resampled to {length} steps; "
                      f"{filled} missing value(s) filled by interpolation", stacklevel=3)


def series_source(name: str, series: list[np.ndarray], labels=None) -> FloatSource:
    try:
        samples, stretched, filled = fill_and_resample(series)
    except ValueError as error:
        raise DataError(f"{name}: {error}") from None
    _report(name, stretched, filled, samples.shape[-1])
    label_tensor = classes = None
    if labels is not None:
        if len(labels) != len(samples):
            raise DataError(f"{name}: {len(labels)} labels for {len(samples)} series")
        label_tensor, classes = labels_from_values(labels, f"{name}: labels")
    return FloatSource(name, torch.from_numpy(samples), [str(i) for i in range(len(samples))],
                       label_tensor, classes, "timeseries", [f"channel {c}" for c in range(samples.shape[1])],
                       unequal_series=list(series) if stretched else None)


def resampled_to(source: FloatSource, length: int) -> FloatSource:
    """``source`` with its series of unequal length resampled to ``length`` steps from the
    series as read (not from their resampling to the longest), as a run trained on ``length``
    steps saw its own: e.g. JapaneseVowels' TRAIN file resamples to 26 steps, its TEST file to
    29. A source of equal-length series is returned as it is (a convolutional encoder takes
    any length)."""
    if source.unequal_series is None or source.samples.shape[-1] == length \
            or len(source.unequal_series) != len(source.samples):  # a subset: not the series as read
        return source
    samples, _, _ = fill_and_resample(source.unequal_series, length)
    warnings.warn(f"{source.name}: series of unequal length resampled to the run's {length} steps "
                  f"(not to this data's longest, {source.samples.shape[-1]})", stacklevel=2)
    return dataclasses.replace(source, samples=torch.from_numpy(samples))


# ---------------------------------------------------------------------------------------
# arrays

def _read_array(path: Path):
    """(values, labels or None) of a .npy or .npz file."""
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                keys = list(archive.keys())
                key = next((k for k in ("series", "x", "X", "data", "images") if k in keys), keys[0] if len(keys) == 1 else None)
                if key is None:
                    raise DataError(f"{path}: no 'series' (or 'x') array among {keys}")
                label_key = next((k for k in ("labels", "y", "targets") if k in keys), None)
                return archive[key], archive[label_key] if label_key else None
        return np.load(path, allow_pickle=False), None
    except DataError:
        raise
    except Exception as error:
        raise DataError(f"{path}: cannot read array file ({error})") from None


def load_series_array(path: Path) -> FloatSource:
    """A float array of shape (N, T) or (N, C, T); trailing NaN marks a shorter series."""
    values, labels = _read_array(path)
    if values.dtype.kind != "f":
        raise DataError(f"{path}: series must be a float array, got dtype {values.dtype}")
    if values.ndim == 2:
        values = values[:, None, :]
    if values.ndim != 3 or values.shape[0] == 0 or values.shape[-1] < 2:
        raise DataError(f"{path}: time series must have shape (N, T) or (N, C, T) with T >= 2, got "
                        f"{values.shape} {values.dtype}")
    return series_source(path.name, list(values.astype(np.float64)), labels)


# ---------------------------------------------------------------------------------------
# UCR/UEA .ts files

def read_ts(path: Path) -> tuple[list[np.ndarray], list[str] | None]:
    """Series (C, T_i) and class labels of a ``.ts`` file (the sktime/aeon text format:
    ``@`` header lines, then one case per line, channels separated by ':', values by ',',
    the class label last when ``@classLabel true``)."""
    header, series, labels = {}, [], []
    in_data = False
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error})") from None
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if line.lower() == "@data":
                in_data = True
            elif line.startswith("@"):
                key, _, value = line[1:].partition(" ")
                header[key.lower()] = value.strip()
            continue
        fields = line.split(":")
        has_label = header.get("classlabel", "false").split()[0].lower() == "true"
        if has_label:
            labels.append(fields.pop().strip())
        try:
            channels = [np.array([np.nan if v.strip() in ("?", "NaN", "") else float(v) for v in f.split(",")])
                        for f in fields]
        except ValueError as error:
            raise DataError(f"{path}: line {number}: {error}") from None
        width = max(len(c) for c in channels)
        series.append(np.stack([np.pad(c, (0, width - len(c)), constant_values=np.nan) for c in channels]))
    if not series:
        raise DataError(f"{path}: no series after @data")
    if len({s.shape[0] for s in series}) != 1:
        raise DataError(f"{path}: cases have different numbers of channels")
    width = max(s.shape[1] for s in series)
    series = [np.pad(s, ((0, 0), (0, width - s.shape[1])), constant_values=np.nan) for s in series]
    return series, labels or None


def load_ts_source(path: Path) -> FloatSource:
    series, labels = read_ts(path)
    return series_source(path.name, series, labels)


# ---------------------------------------------------------------------------------------
# the archive datasets inside aeon's wheel

def aeon_data_dir() -> Path:
    spec = importlib.util.find_spec("aeon")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the UCR/UEA datasets ship with aeon, which is not installed; run: "
                        "pip install 'selfsup[timeseries]'")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def _archive_dataset(name: str, parts=("TRAIN", "TEST")):
    def load(image_size=None) -> FloatSource:
        folder = aeon_data_dir() / name
        series, labels = [], []
        for part in parts:
            path = folder / f"{name}_{part}.ts"
            if not path.is_file():
                raise DataError(f"{path}: missing from the installed aeon package")
            part_series, part_labels = read_ts(path)
            width = max(s.shape[1] for s in series + part_series)
            series = [np.pad(s, ((0, 0), (0, width - s.shape[1])), constant_values=np.nan)
                      for s in series + part_series]
            labels += part_labels or []
        return series_source(name if len(parts) > 1 else f"{name}_{parts[0]}", series, labels or None)
    joined = "TRAIN and TEST joined" if len(parts) > 1 else f"its archive {parts[0]} split"
    load.__doc__ = f"The UCR/UEA {name} dataset ({joined}) from aeon's installed files."
    return load


def builtin_series() -> dict:
    """The built-in archive datasets as ``selfsup.data.sources.BuiltinDataset`` entries."""
    rows = [("GunPoint", 50, 150, "UCR: hand motion, gun draw vs pointing; 1 channel, 150 steps"),
            ("ArrowHead", 36, 175, "UCR: arrow-head outlines, 3 classes; 1 channel, 251 steps"),
            ("ItalyPowerDemand", 67, 1029, "UCR: daily Italian power demand, winter vs summer; 1 channel, 24 steps"),
            ("OSULeaf", 200, 242, "UCR: leaf outlines, 6 species; 1 channel, 427 steps"),
            ("ACSF1", 100, 100, "UCR: appliance power consumption, 10 classes; 1 channel, 1460 steps"),
            ("BasicMotions", 40, 40, "UEA: smartwatch accelerometer+gyroscope, 4 activities; 6 channels, 100 steps"),
            ("JapaneseVowels", 270, 370, "UEA: speakers' vowel LPC coefficients, 9 speakers; 12 channels, "
                                         "7-29 steps (unequal, resampled to the longest)")]
    datasets = {}
    for name, train, test, description in rows:  # NAME: both splits joined; NAME_TRAIN, NAME_TEST: the archive's
        datasets[name] = BuiltinDataset(name, "timeseries", train + test, True, description, _archive_dataset(name))
        for part, size in (("TRAIN", train), ("TEST", test)):
            datasets[f"{name}_{part}"] = BuiltinDataset(f"{name}_{part}", "timeseries", size, True,
                                                        f"{name}'s archive {part} split",
                                                        _archive_dataset(name, (part,)))
    return datasets


for _dataset in builtin_series().values():
    register_dataset(_dataset)
