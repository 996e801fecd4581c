"""An on-disk cache of a decoded image folder, so a second run never decodes again.

The decoded, resized uint8 images of a folder are stored as one ``.npy`` array that is
memory-mapped on load, next to ``index.json`` holding what decoding produced (ids,
labels, classes, skipped files) and the folder's *fingerprint*: every image file's
relative path, byte size and modification time, plus the requested image size. A cache
is used only when the fingerprint still matches, so adding, removing, replacing or
touching a file rebuilds it.

Writes are atomic (temporary file, then ``os.replace``), and the array's file name
carries the fingerprint's digest, so a reader never pairs an index with another build's
array. A cache that cannot be read is rebuilt with a warning, never a crash.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from selfsup.atomic import atomic_path
from selfsup.data.sources import ImageSource, image_files, load_folder_source

INDEX = "index.json"
VERSION = 2  # 2: 16-bit images scaled by 1/257 (not clipped), TIFF, N channels


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "selfsup"


def fingerprint(root: Path, image_size: int | None) -> dict:
    """What the decoded images depend on: the files (path, size, mtime) and the size asked for."""
    files = []
    for path in image_files(root):
        stat = path.stat()
        files.append([str(path.relative_to(root)), stat.st_size, stat.st_mtime_ns])
    return {"version": VERSION, "image_size": image_size, "files": files}


def digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def cache_location(root: Path, cache_dir: Path, image_size: int | None) -> Path:
    """One directory per (folder, requested size) below ``cache_dir``."""
    key = digest([str(root.resolve()), image_size])
    return Path(cache_dir) / f"{root.resolve().name}-{image_size or 'auto'}-{key}"


def cached_folder_source(root: Path, image_size: int | None = None, cache_dir: Path | None = None) -> ImageSource:
    """``load_folder_source(root, image_size)``, read from the cache when the folder has not
    changed since it was written, else decoded and written to the cache."""
    root = Path(root)
    where = cache_location(root, cache_dir or default_cache_dir(), image_size)
    expected = fingerprint(root, image_size)
    source = _read(where, expected)
    if source is None:
        source = load_folder_source(root, image_size)
        _write(where, expected, source)
    return source


def _read(where: Path, expected: dict) -> ImageSource | None:
    index_path = where / INDEX
    if not index_path.exists():
        return None
    try:
        index = json.loads(index_path.read_text())
        if index.get("fingerprint") != expected:
            return None  # the folder changed: rebuild silently
        # copy-on-write mapping: pages are read lazily, and torch gets a writable array
        array = np.load(where / index["array"], mmap_mode="c", allow_pickle=False)
        if array.dtype != np.uint8 or list(array.shape) != index["shape"]:
            raise ValueError(f"array is {array.dtype} {array.shape}, index says uint8 {index['shape']}")
        labels = None if index["labels"] is None else torch.tensor(index["labels"], dtype=torch.long)
        return ImageSource(index["name"], torch.from_numpy(array), index["ids"], labels,
                           index["classes"], [tuple(s) for s in index["skipped"]])
    except Exception as error:
        warnings.warn(f"image cache {where} is unreadable ({type(error).__name__}: {error}); "
                      f"decoding the folder again", stacklevel=3)
        return None


def _write(where: Path, expected: dict, source: ImageSource) -> None:
    try:
        where.mkdir(parents=True, exist_ok=True)
        array_name = f"images-{digest(expected)}.npy"
        _atomic(where / array_name, lambda f: np.save(f, source.images.numpy(), allow_pickle=False))
        index = {"fingerprint": expected, "array": array_name, "shape": list(source.images.shape),
                 "name": source.name, "ids": source.ids,
                 "labels": None if source.labels is None else source.labels.tolist(),
                 "classes": source.classes, "skipped": [list(s) for s in source.skipped]}
        _atomic(where / INDEX, lambda f: f.write(json.dumps(index).encode()))
        for old in where.glob("images-*.npy"):  # arrays of earlier versions of the folder
            if old.name != array_name:
                old.unlink(missing_ok=True)
    except OSError as error:  # a cache is an optimisation: failing to write one is not fatal
        warnings.warn(f"cannot write image cache {where} ({error}); continuing without it", stacklevel=3)


def _atomic(path: Path, write) -> None:
    with atomic_path(path) as temporary, open(temporary, "wb") as f:
        write(f)
