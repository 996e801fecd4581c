"""Image sources: folders, arrays and the built-in digits (``selfsup.modalities.image``
opens them).

A source is decoded once into memory as a ``(N, 3, H, W)`` uint8 tensor with one id per
sample (file path or array index) and integer labels when the data carries them. Labels
are used for evaluation only; pretraining never sees them.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from selfsup.data.base import BuiltinDataset, DataError, register_dataset
from selfsup.progress import bar, stage

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
MAX_DEFAULT_SIZE = 224


@dataclass
class ImageSource:
    name: str
    images: torch.Tensor  # (N, 3, H, W) uint8
    ids: list[str]
    labels: torch.Tensor | None = None  # (N,) int64
    classes: list[str] | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    modality: ClassVar[str] = "image"

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise DataError(f"{self.name}: images must be a (N, 3, H, W) uint8 tensor, "
                            f"got {tuple(self.images.shape)} {self.images.dtype}")
        if len(self.images) == 0:
            raise DataError(f"{self.name}: no images")
        if len(self.ids) != len(self.images):
            raise DataError(f"{self.name}: {len(self.ids)} ids for {len(self.images)} images")
        if self.labels is not None and len(self.labels) != len(self.images):
            raise DataError(f"{self.name}: {len(self.labels)} labels for {len(self.images)} images")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def samples(self) -> torch.Tensor:  # what every modality's source has (selfsup.data.samples)
        return self.images

    @property
    def input_shape(self) -> list[int]:
        return list(self.images.shape[1:])

    def subset(self, index) -> "ImageSource":
        index = torch.as_tensor(index, dtype=torch.long)
        return ImageSource(
            self.name, self.images[index], [self.ids[i] for i in index.tolist()],
            None if self.labels is None else self.labels[index], self.classes, self.skipped)


# ---------------------------------------------------------------------------------------
# built-in datasets (ship offline)

def load_digits_source(image_size: int | None = None) -> ImageSource:
    """scikit-learn's 1,797 8x8 handwritten digits, upsampled (bilinear) to ``image_size``."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    size = image_size or 32
    pixels = torch.from_numpy(bunch.images).float().div_(16.0).unsqueeze(1)  # (N,1,8,8) in [0,1]
    pixels = F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False)
    images = pixels.clamp_(0, 1).mul_(255).round_().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    return ImageSource("digits", images, [str(i) for i in range(len(images))],
                       torch.from_numpy(bunch.target).long(), [str(c) for c in range(10)])


register_dataset(BuiltinDataset("digits", "image", 1797, True,
                                "scikit-learn handwritten digits, 8x8 grey, upsampled to 32 px",
                                load_digits_source))


# ---------------------------------------------------------------------------------------
# array files

def load_array_source(path: Path, image_size: int | None = None) -> ImageSource:
    """A ``.npy`` of uint8 images (N, H, W[, C]) or an ``.npz`` with ``images`` (or ``x``)
    and optional ``labels`` (or ``y``)."""
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                keys = list(archive.keys())
                image_key = next((k for k in ("images", "x", "X", "data") if k in keys), None)
                if image_key is None:
                    if len(keys) != 1:
                        raise DataError(f"{path}: no 'images' array among {keys}")
                    image_key = keys[0]
                array = archive[image_key]
                label_key = next((k for k in ("labels", "y", "targets") if k in keys), None)
                labels = archive[label_key] if label_key else None
        else:
            array, labels = np.load(path, allow_pickle=False), None
    except DataError:
        raise
    except Exception as error:
        raise DataError(f"{path}: cannot read array file ({error})") from None

    if array.dtype != np.uint8:
        raise DataError(f"{path}: images must be uint8 (0-255), got dtype {array.dtype}")
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3, 4):
        raise DataError(f"{path}: images must have shape (N, H, W) or (N, H, W, C) with C in "
                        f"1, 3, 4; got {array.shape}")
    if len(array) == 0:
        raise DataError(f"{path}: the array holds no images")
    images = torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2)
    if images.shape[1] == 4:  # drop alpha
        images = images[:, :3]
    elif images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    images = images.contiguous()
    if image_size and (images.shape[-1] != image_size or images.shape[-2] != image_size):
        images = resize_batch(images, image_size)
    elif images.shape[-1] != images.shape[-2]:
        images = resize_batch(images, min(images.shape[-2:]))
    label_tensor = classes = None
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(array),):
            raise DataError(f"{path}: labels must have shape ({len(array)},), got {labels.shape}")
        values, label_index = np.unique(labels, return_inverse=True)
        label_tensor, classes = torch.from_numpy(label_index).long(), [str(v) for v in values]
    return ImageSource(path.name, images, [str(i) for i in range(len(images))], label_tensor, classes)


def resize_batch(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the short side to ``size`` and centre-crop to a square (uint8 in and out)."""
    h, w = images.shape[-2:]
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    out = F.interpolate(images.float(), size=(new_h, new_w), mode="bilinear", antialias=True,
                        align_corners=False)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return out[..., top:top + size, left:left + size].round_().clamp_(0, 255).to(torch.uint8)


# ---------------------------------------------------------------------------------------
# image folders

def _read_size(path: Path):
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except Exception:
        return None


def _decode(path: Path, size: int):
    """Decode one file to a (3, size, size) uint8 array, or return the reason it failed."""
    from PIL import Image, ImageOps

    try:
        if path.stat().st_size == 0:
            return "empty file"
        with Image.open(path) as image:
            image.draft("RGB", (size, size))  # JPEG: decode at reduced scale when much larger
            image = ImageOps.exif_transpose(image).convert("RGB")  # camera orientation applied
            image = ImageOps.fit(image, (size, size), Image.Resampling.BILINEAR) \
                if image.size != (size, size) else image
            return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).copy()
    except Exception as error:
        return f"cannot decode ({type(error).__name__}: {str(error).splitlines()[0][:120]})"


def image_files(root: Path) -> list[Path]:
    """Every image file below ``root``, sorted."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def load_folder_source(root: Path, image_size: int | None = None, workers: int | None = None) -> ImageSource:
    """All images below ``root`` (recursive). When every image sits in a sub-folder of
    ``root``, the first-level folder names are the class labels (evaluation only).
    Files that cannot be decoded are skipped, named once in a warning, and listed in
    ``source.skipped``."""
    files = image_files(root)
    if not files:
        raise DataError(f"{root}: no image files ({', '.join(IMAGE_EXTENSIONS)}) found")
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        if image_size is None:
            sizes = [s for s in bar(pool.map(_read_size, files), total=len(files), desc="reading image sizes",
                                    unit="file") if s is not None]
            if not sizes:
                raise DataError(f"{root}: none of the {len(files)} image files can be read")
            image_size = min(MAX_DEFAULT_SIZE, int(np.median([min(s) for s in sizes])))
        stage("decoding %d images from %s at %d px", len(files), root, image_size)
        decoded = list(bar(pool.map(lambda p: _decode(p, image_size), files), total=len(files),
                           desc="decoding", unit="img"))

    kept, skipped = [], []
    for path, result in zip(files, decoded):
        if isinstance(result, str):
            skipped.append((str(path), result))
        else:
            kept.append((path, result))
    if not kept:
        raise DataError(f"{root}: none of the {len(files)} image files could be decoded "
                        f"(first: {skipped[0][0]}: {skipped[0][1]})")

    if skipped:
        listing = "; ".join(f"{p}: {why}" for p, why in skipped[:20])
        more = f" (and {len(skipped) - 20} more)" if len(skipped) > 20 else ""
        warnings.warn(f"skipped {len(skipped)} unreadable file(s) in {root}: {listing}{more}",
                      stacklevel=2)
    relative = [p.relative_to(root) for p, _ in kept]
    labels = classes = None
    if all(len(r.parts) >= 2 for r in relative):
        classes = sorted({r.parts[0] for r in relative})
        if len(classes) >= 2:
            lookup = {c: i for i, c in enumerate(classes)}
            labels = torch.tensor([lookup[r.parts[0]] for r in relative], dtype=torch.long)
        else:
            classes = None
    images = torch.from_numpy(np.stack([a for _, a in kept]))
    return ImageSource(root.name, images, [str(r) for r in relative], labels, classes, skipped)
