"""Image folders bigger than memory: an index of paths, decoded as they are needed.

``index_folder`` lists the image files below a root with one directory scan per sub-folder
in parallel threads (labels: the first-level folder names, as for the in-memory folders).
A ``StreamSource`` holds the paths only; its ``samples`` (``LazyImages``) decode a slice
when indexed (short side resized to the image size, centre crop: the evaluation view), so
evaluation, embedding and the report read a streamed folder as they read a tensor.

Training crops every view from the **full** image, as torchvision's ``RandomResizedCrop``
does: ``crop_views`` runs in DataLoader worker processes, decodes each file once (JPEG draft
mode down to twice the largest view size), draws each view's box from a generator seeded
by (seed, epoch, sample index, view), and resamples it to the view's size. Flip, colour,
blur and solarisation then run batched on the training device (``Recipe.finish``). Crops
depend only on (seed, epoch, index), so ``--resume`` replays them and every rank of a
torchrun job crops its slice of each global batch as one process would.

A file that cannot be decoded is skipped where it is met: the batch takes the next readable
file in its place, and the training process names the file once in a warning.
"""

from __future__ import annotations

import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from selfsup.data.base import DataError
from selfsup.data.sources import IMAGE_EXTENSIONS, MAX_DEFAULT_SIZE, _decode, _read_size, readable
from selfsup.progress import stage

RATIO = (3 / 4, 4 / 3)  # the aspect ratios of a crop box, as in torchvision and the recipes
_warned: set[str] = set()


def _scan(directory: str) -> list[str]:
    """Every image file below ``directory`` (recursive), by os.scandir."""
    found, pending = [], [directory]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                elif entry.name.lower().endswith(IMAGE_EXTENSIONS) and entry.is_file():
                    found.append(entry.path)
    return found


def index_folder(root: Path, workers: int | None = None) -> tuple[list[str], torch.Tensor | None, list[str] | None]:
    """(sorted paths relative to ``root``, labels, classes) of the image files below ``root``;
    the first-level sub-folders are scanned in parallel."""
    root = Path(root)
    with os.scandir(root) as entries:
        top = list(entries)
    files = [e.name for e in top if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS)]
    folders = [e.path for e in top if e.is_dir(follow_symlinks=False)]
    with ThreadPoolExecutor(workers or min(32, 4 * (os.cpu_count() or 1))) as pool:
        for found in pool.map(_scan, folders):
            files += [os.path.relpath(p, root) for p in found]
    if not files:
        raise DataError(f"{root}: no image files ({', '.join(IMAGE_EXTENSIONS)}) found")
    files.sort()
    labels = classes = None
    first = [f.split(os.sep, 1)[0] if os.sep in f else None for f in files]
    if all(first):
        classes = sorted(set(first))
        if len(classes) >= 2:
            lookup = {c: i for i, c in enumerate(classes)}
            labels = torch.tensor([lookup[c] for c in first], dtype=torch.long)
        else:
            classes = None
    return files, labels, classes


def _warn_once(path: str, reason: str) -> None:
    if path not in _warned:
        _warned.add(path)
        warnings.warn(f"skipped unreadable file {path}: {reason}", stacklevel=3)


class LazyImages:
    """The (N, 3, S, S) uint8 images of a ``StreamSource``, decoded when indexed."""

    dtype = torch.uint8
    ndim = 4

    def __init__(self, source: "StreamSource"):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    @property
    def shape(self) -> torch.Size:
        s = self.source.image_size
        return torch.Size((len(self), 3, s, s))

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, int):
            return self[[index]][0]
        rows = range(len(self))[index] if isinstance(index, slice) else torch.as_tensor(index).tolist()
        paths = [self.source.path(i) for i in rows]
        size = self.source.image_size
        with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
            decoded = list(pool.map(lambda p: _decode(p, size), paths))
        out = torch.zeros((len(paths), 3, size, size), dtype=torch.uint8)
        for k, (path, result) in enumerate(zip(paths, decoded)):
            if isinstance(result, str):
                _warn_once(str(path), result)  # a blank image in its place, named once
            else:
                out[k] = torch.from_numpy(result)
        return out


@dataclass
class StreamSource:
    """An image folder read as it is needed: paths, labels, the size images are shown at."""

    name: str
    root: Path
    files: list[str]
    image_size: int
    labels: torch.Tensor | None = None
    classes: list[str] | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    members: list | None = None  # shard members (``selfsup.data.shards``) in place of files below root
    modality = "image"
    streamed = True

    def __len__(self) -> int:
        return len(self.files)

    @property
    def ids(self) -> list[str]:
        return self.files

    def path(self, i: int):
        """What to decode for sample ``i``: a file below ``root``, or a shard member."""
        return self.members[i] if self.members is not None else self.root / self.files[i]

    @property
    def samples(self) -> LazyImages:
        return LazyImages(self)

    @property
    def input_shape(self) -> list[int]:
        return [3, self.image_size, self.image_size]

    def subset(self, index) -> "StreamSource":
        index = torch.as_tensor(index, dtype=torch.long)
        rows = index.tolist()
        return StreamSource(self.name, self.root, [self.files[i] for i in rows], self.image_size,
                            None if self.labels is None else self.labels[index], self.classes, self.skipped,
                            None if self.members is None else [self.members[i] for i in rows])


def open_stream(root: Path, image_size: int | None = None, workers: int | None = None,
                tiff: str = "refuse") -> StreamSource | None:
    """Index ``root``; without ``image_size``, the median short side of the first 256 files
    (at most 224), as the in-memory folders choose it. A folder with TIFF files is refused in
    one line (``tiff="refuse"``) or gives None (``"none"``: read it in memory)."""
    files, labels, classes = index_folder(root, workers)
    tiffs = [f for f in files if f.lower().endswith((".tif", ".tiff"))]
    if tiffs and tiff == "none":
        return None
    if tiffs:  # TIFF stacks carry any number of channels; the streamed crops are RGB
        raise DataError(f"{root / tiffs[0]}: TIFF images ({len(tiffs)} here) are read in memory only; "
                        f"pass --data-mode memory")
    image_size = image_size or choose_size([root / f for f in files[:256]], root)
    stage("streaming %d images from %s at %d px", len(files), root, image_size)
    return StreamSource(root.name, root, files, image_size, labels, classes)


def choose_size(paths, where) -> int:
    """The median short side of ``paths`` (at most 224), as the in-memory folders choose it."""
    with ThreadPoolExecutor(8) as pool:
        sizes = [s for s in pool.map(_read_size, paths) if s]
    if not sizes:
        raise DataError(f"{where}: none of the first {len(paths)} image files can be read")
    return min(MAX_DEFAULT_SIZE, int(np.median([min(s) for s in sizes])))


def crop_box(width: int, height: int, scale, generator: torch.Generator) -> tuple[float, float, float, float]:
    """A random box of ``width`` x ``height`` pixels (left, top, right, bottom): area fraction
    in ``scale``, aspect ratio in 3/4..4/3 (log-uniform); ten tries, then the centred
    largest box of an allowed ratio (torchvision's ``RandomResizedCrop.get_params``)."""
    area = width * height
    draws = torch.rand(10, 4, generator=generator).tolist()
    for a, r, x, y in draws:
        target = area * (scale[0] + a * (scale[1] - scale[0]))
        ratio = math.exp(math.log(RATIO[0]) + r * (math.log(RATIO[1]) - math.log(RATIO[0])))
        w, h = math.sqrt(target * ratio), math.sqrt(target / ratio)
        if 0 < w <= width and 0 < h <= height:
            left, top = x * (width - w), y * (height - h)
            return left, top, left + w, top + h
    ratio = width / height
    w, h = (width, width / RATIO[0]) if ratio < RATIO[0] else (height * RATIO[1], height) if ratio > RATIO[1] \
        else (width, height)
    w, h = min(w, width), min(h, height)
    return (width - w) / 2, (height - h) / 2, (width + w) / 2, (height + h) / 2


def view_generator(seed: int, epoch: int, index: int, view: int) -> torch.Generator:
    return torch.Generator().manual_seed(hash((seed, epoch, index, view)) & 0x7FFF_FFFF_FFFF_FFFF)


def crop_views(path: Path, views, seed: int, epoch: int, index: int):
    """Every view of one file as uint8 (3, size, size) arrays, or the reason it failed.
    ``views``: (size, crop_scale) per view."""
    from PIL import Image, ImageOps

    try:
        with Image.open(readable(path)) as image:
            largest = max(size for size, _ in views)
            image.draft("RGB", (2 * largest, 2 * largest))
            image = ImageOps.exif_transpose(image)
            if image.mode.startswith("I;16") or image.mode == "I":  # 16-bit grey: scaled, not clipped
                scaled = (np.asarray(image, dtype=np.float64) / 257).round().clip(0, 255).astype(np.uint8)
                image = Image.fromarray(scaled, "L")
            image = image.convert("RGB")
            out = []
            for v, (size, scale) in enumerate(views):
                box = crop_box(*image.size, scale, view_generator(seed, epoch, index, v))
                view = image.resize((size, size), Image.Resampling.BILINEAR, box=box, reducing_gap=2.0)
                out.append(np.ascontiguousarray(np.asarray(view, dtype=np.uint8).transpose(2, 0, 1)))
            return out
    except Exception as error:
        return f"cannot decode ({type(error).__name__}: {str(error).splitlines()[0][:120]})"


def report_skipped(skipped) -> None:
    """Warn once per file (in the training process) about files a worker could not decode."""
    for path, reason in skipped:
        _warn_once(path, reason)


class StreamViews(torch.utils.data.Dataset):
    """Batches of cropped views: ``dataset[(epoch, indices)]`` -> (list of (B, 3, s, s) uint8
    per view, indices, [(file, reason) skipped]). A file that fails is replaced by the next
    readable one; the training process names it (``report_skipped``)."""

    def __init__(self, source: StreamSource, views, seed: int):
        self.source, self.views, self.seed = source, [(s, tuple(c)) for s, c in views], seed
        _warned.clear()  # each training run names its unreadable files once

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, item):
        epoch, indices = item
        per_view, skipped = [[] for _ in self.views], []
        for index in indices:
            for attempt in range(len(self.source)):
                i = (index + attempt) % len(self.source)
                result = crop_views(self.source.path(i), self.views, self.seed, epoch, i)
                if not isinstance(result, str):
                    break
                skipped.append((str(self.source.path(i)), result))
            else:
                raise DataError(f"{self.source.root}: no readable image left")
            for v, array in enumerate(result):
                per_view[v].append(torch.from_numpy(array))
        return [torch.stack(v) for v in per_view], torch.as_tensor(indices), skipped
