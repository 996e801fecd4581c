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

Channels: JPEG, PNG and the other Pillow formats give RGB; a TIFF of C planes (e.g. the 13
bands of a Sentinel-2 tile) keeps them and is cropped as RGB images are (``resized_views``). A folder's channel count is the commonest among its
first files; a file with another count is skipped like an unreadable one.

A file that cannot be decoded is skipped where it is met: the batch takes the next readable
file in its place, and the training process names the file once in a warning. Every file
skipped while training or while decoding samples is added to the source's ``skipped`` list,
so the run's summary, ``skipped_files.txt`` and report name it.
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
import torch.nn.functional as F

from selfsup.data.base import DataError
from selfsup.data.sources import (IMAGE_EXTENSIONS, MAX_DEFAULT_SIZE, TIFF_EXTENSIONS, _decode, _read_size,
                                  read_tiff, readable)
from selfsup.progress import stage

ORIENTATION = 0x0112  # the EXIF tag of the camera's orientation
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


def _warn_once(path: str, reason: str, skipped: list | None = None) -> None:
    """Name an unreadable file once per process (and add it to ``skipped``, a source's list)."""
    if path not in _warned:
        _warned.add(path)
        warnings.warn(f"skipped unreadable file {path}: {reason}", stacklevel=3)
    if skipped is not None:
        add_skipped(skipped, [(path, reason)])


def add_skipped(skipped: list, found) -> None:
    """Append the (file, reason) pairs of ``found`` whose file ``skipped`` does not name yet."""
    known = {f for f, _ in skipped}
    for path, reason in found:
        if path not in known:
            known.add(path)
            skipped.append((path, reason))


def _channel_mismatch(found: int, expected: int) -> str:
    return f"{found} channels, the images here have {expected}"


class LazyImages:
    """The (N, C, S, S) uint8 images of a ``StreamSource``, decoded when indexed."""

    dtype = torch.uint8
    ndim = 4

    def __init__(self, source: "StreamSource"):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    @property
    def shape(self) -> torch.Size:
        s = self.source.image_size
        return torch.Size((len(self), self.source.channels, s, s))

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, int):
            return self[[index]][0]
        rows = range(len(self))[index] if isinstance(index, slice) else torch.as_tensor(index).tolist()
        paths = [self.source.path(i) for i in rows]
        size = self.source.image_size
        with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
            decoded = list(pool.map(lambda p: _decode(p, size), paths))
        channels = self.source.channels
        out = torch.zeros((len(paths), channels, size, size), dtype=torch.uint8)
        for k, (path, result) in enumerate(zip(paths, decoded)):
            if not isinstance(result, str) and len(result) != channels:
                result = _channel_mismatch(len(result), channels)
            if isinstance(result, str):  # a blank image in its place, named once
                _warn_once(str(path), result, self.source.skipped)
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
    channels: int = 3
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
        return [self.channels, self.image_size, self.image_size]

    def subset(self, index) -> "StreamSource":
        index = torch.as_tensor(index, dtype=torch.long)
        rows = index.tolist()
        return StreamSource(self.name, self.root, [self.files[i] for i in rows], self.image_size,
                            None if self.labels is None else self.labels[index], self.classes, self.skipped,
                            None if self.members is None else [self.members[i] for i in rows], self.channels)


def open_stream(root: Path, image_size: int | None = None, workers: int | None = None) -> StreamSource:
    """Index ``root``; without ``image_size``, the median short side of the first 256 files
    (at most 224), as the in-memory folders choose it; the channel count, the commonest of
    the first 64 files (3 unless there are TIFF stacks)."""
    files, labels, classes = index_folder(root, workers)
    image_size = image_size or choose_size([root / f for f in files[:256]], root)
    channels = choose_channels([root / f for f in files[:64]], root)
    stage("streaming %d images from %s at %d px", len(files), root, image_size)
    return StreamSource(root.name, root, files, image_size, labels, classes, channels=channels)


def choose_channels(paths, where) -> int:
    """The commonest channel count of ``paths`` (decoded small): 3 for every Pillow format,
    C for a TIFF of C planes."""
    if not any(p.suffix.lower() in TIFF_EXTENSIONS for p in paths):
        return 3
    with ThreadPoolExecutor(8) as pool:
        counts = [len(r) for r in pool.map(lambda p: _decode(p, 8), paths) if not isinstance(r, str)]
    if not counts:
        raise DataError(f"{where}: none of the first {len(paths)} image files can be read")
    return max(set(counts), key=counts.count)


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


def crop_views(path: Path, views, seed: int, epoch: int, index: int, channels: int = 3):
    """Every view of one file as uint8 (C, size, size) arrays, or the reason it failed.
    ``views``: (size, crop_scale) per view; ``channels``: the C the file must have."""
    from PIL import Image, ImageOps

    try:
        planes = read_tiff(path) if path.suffix.lower() in TIFF_EXTENSIONS else None
    except DataError as error:  # a TIFF of samples that have no 8-bit reading (floats, signed)
        return str(error)
    except Exception:  # not a TIFF tifffile reads: Pillow may still
        planes = None
    try:
        if planes is not None:
            if len(planes) != channels:
                return _channel_mismatch(len(planes), channels)
            return resized_views(torch.from_numpy(np.ascontiguousarray(planes)), views, seed, epoch, index)
        if channels != 3:
            return _channel_mismatch(3, channels)
        with Image.open(readable(path)) as image:
            largest = max(size for size, _ in views)
            image.draft("RGB", (2 * largest, 2 * largest))
            if image.getexif().get(ORIENTATION, 1) != 1:  # camera orientation applied (a copy, so only then)
                image = ImageOps.exif_transpose(image)
            if image.mode.startswith("I;16") or image.mode == "I":  # 16-bit grey: scaled, not clipped
                scaled = (np.asarray(image, dtype=np.float64) / 257).round().clip(0, 255).astype(np.uint8)
                image = Image.fromarray(scaled, "L")
            elif image.mode == "F":
                return "cannot decode (32-bit float pixels: no fixed range to scale to 8 bits)"
            if image.mode != "RGB":
                image = image.convert("RGB")
            pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)  # (3, H, W), channels-last strides
        return resized_views(pixels, views, seed, epoch, index)
    except Exception as error:
        return f"cannot decode ({type(error).__name__}: {str(error).splitlines()[0][:120]})"


def resized_views(image: torch.Tensor, views, seed: int, epoch: int, index: int) -> list[np.ndarray]:
    """The views of one (C, H, W) uint8 image: each view's box (``crop_box``, drawn from
    (seed, epoch, index, view)) rounded to whole pixels, as torchvision's
    ``RandomResizedCrop`` crops, and resized by torch's uint8 bilinear antialiased kernel
    (here, one thread, in a one-off timing loop over 300 500x375 JPEGs: 1.7 ms an image with two
    224 px views, decoding included, against 2.9 ms with Pillow's box resize and 2.7 ms with
    torchvision's ``RandomResizedCrop`` on PIL; BENCHMARKS.md, "Streaming")."""
    height, width = image.shape[-2:]
    out = []
    for v, (size, scale) in enumerate(views):
        left, top, right, bottom = crop_box(width, height, scale, view_generator(seed, epoch, index, v))
        top, left = int(top), int(left)
        box_h, box_w = max(1, min(height - top, round(bottom - top))), max(1, min(width - left, round(right - left)))
        region = image[None, :, top:top + box_h, left:left + box_w]
        view = F.interpolate(region, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out.append(view[0].contiguous().numpy())
    return out


def report_skipped(skipped, into: list | None = None) -> None:
    """Warn once per file (in the training process) about files a worker could not decode,
    and add them to ``into`` (the source's ``skipped`` list)."""
    for path, reason in skipped:
        _warn_once(path, reason, into)


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
        channels, skipped = self.source.channels, []
        batches = [torch.empty((len(indices), channels, size, size), dtype=torch.uint8) for size, _ in self.views]
        if torch.utils.data.get_worker_info() is not None:  # written where the training process reads them:
            batches = [b.share_memory_() for b in batches]  # no copy when the batch is sent
        for row, index in enumerate(indices):
            for attempt in range(len(self.source)):
                i = (index + attempt) % len(self.source)
                result = crop_views(self.source.path(i), self.views, self.seed, epoch, i, channels)
                if not isinstance(result, str):
                    break
                skipped.append((str(self.source.path(i)), result))
            else:
                raise DataError(f"{self.source.root}: no readable image left")
            for batch, array in zip(batches, result):
                batch[row] = torch.from_numpy(array)
        return batches, torch.as_tensor(indices), skipped
