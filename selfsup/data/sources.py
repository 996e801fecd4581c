"""Image sources: folders, arrays and the built-in digits (``selfsup.modalities.image``
opens them).

A source is decoded once into memory as a ``(N, C, H, W)`` uint8 tensor with one id per
sample (file path or array index) and integer labels when the data carries them. Labels
are used for evaluation only; pretraining never sees them.

Channels: colour images have C = 3 (RGB; an alpha channel is dropped, palette, CMYK and
the like are converted), greyscale images are repeated to 3 channels, and images with
other channel counts keep them: a multi-page or multi-sample TIFF of C planes (e.g. the 13
bands of a Sentinel-2 tile), a ``(N, H, W, C)`` or ``(N, C, H, W)`` array. All images of
a folder must have the same C; files with another count are skipped and named.

Bit depth: 8-bit samples are kept; 16-bit samples (PNG, TIFF, uint16 arrays) are scaled
to 8 bits by their bit depth, ``round(value / 257)`` (65535 -> 255), never clipped (16-bit
colour PNGs are reduced so by Pillow, to the high byte, within 1 of value / 257); float
arrays must hold values in [0, 1] (times 255). Other sample types (float TIFFs, signed
integers) are refused, naming the file and the type.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from selfsup.data.base import BuiltinDataset, DataError, register_dataset
from selfsup.progress import bar, stage

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
TIFF_EXTENSIONS = (".tif", ".tiff")
MAX_DEFAULT_SIZE = 224


@dataclass
class ImageSource:
    name: str
    images: torch.Tensor  # (N, C, H, W) uint8; C = 3 for colour and greyscale images
    ids: list[str]
    labels: torch.Tensor | None = None  # (N,) int64
    classes: list[str] | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    modality: ClassVar[str] = "image"

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] < 1:
            raise DataError(f"{self.name}: images must be a (N, C, H, W) uint8 tensor, "
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
    def channels(self) -> int:
        return int(self.images.shape[1])

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

def to_uint8(array: np.ndarray, where: str) -> np.ndarray:
    """8-bit samples of an image array: uint8 kept, uint16 scaled by its bit depth
    (``round(value / 257)``), floats in [0, 1] times 255; anything else refused."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return np.rint(array / 257.0).astype(np.uint8)
    if array.dtype.kind == "f":
        low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
        if not (np.isfinite(low) and np.isfinite(high) and 0 <= low and high <= 1):
            raise DataError(f"{where}: float images must hold values in [0, 1] (scaled by 255), got "
                            f"[{low:g}, {high:g}]; save uint8 (0-255) or uint16 pixels instead")
        return np.rint(array * 255.0).astype(np.uint8)
    raise DataError(f"{where}: images must be uint8, uint16 or float in [0, 1], got dtype {array.dtype}")


def channels_first(array: np.ndarray, where: str) -> np.ndarray:
    """(N, C, H, W) of an (N, H, W), (N, H, W, C) or (N, C, H, W) array: the channel axis
    is the last or the second, whichever is smaller than both other sides."""
    if array.ndim == 3:
        return array[:, None]
    if array.ndim == 4:
        if array.shape[-1] < min(array.shape[1:3]):
            return array.transpose(0, 3, 1, 2)
        if array.shape[1] < min(array.shape[2:]):
            return array
    raise DataError(f"{where}: images must have shape (N, H, W), (N, H, W, C) or (N, C, H, W) with C "
                    f"smaller than H and W; got {array.shape}")


def as_image_channels(images, where: str = ""):
    """Greyscale repeated to 3 channels; of 4 channels, the alpha dropped (RGBA); other counts kept."""
    if images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1) if isinstance(images, torch.Tensor) else np.repeat(images, 3, axis=1)
    return images[:, :3] if images.shape[1] == 4 else images


def load_array_source(path: Path, image_size: int | None = None) -> ImageSource:
    """A ``.npy`` of images (N, H, W), (N, H, W, C) or (N, C, H, W) or an ``.npz`` with
    ``images`` (or ``x``) and optional ``labels`` (or ``y``). uint8, uint16 (scaled by
    1/257) or float in [0, 1]; 1 channel is repeated to 3, 4 are RGBA (alpha dropped), any
    other count is kept."""
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

    array = channels_first(array, str(path))
    if len(array) == 0:
        raise DataError(f"{path}: the array holds no images")
    array = to_uint8(array, str(path))
    images = as_image_channels(torch.from_numpy(np.ascontiguousarray(array))).contiguous()
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

def readable(path):
    """What a decoder opens: a file's path, or a file object for a member of a shard
    (``selfsup.data.shards.Member``, which has ``open_bytes``)."""
    return path.open_bytes() if hasattr(path, "open_bytes") else path


def size_of(path) -> int:
    return path.size if hasattr(path, "open_bytes") else path.stat().st_size


def read_tiff(path: Path) -> np.ndarray | None:
    """(C, H, W) uint8 planes of a greyscale, RGB(A) or multi-plane TIFF (every page or
    sample beside Y and X is a channel; 16-bit scaled by 1/257), or None for the other
    photometric kinds (palette, CMYK, YCbCr, ...), which Pillow converts to RGB."""
    import tifffile

    with tifffile.TiffFile(readable(path)) as tif:
        page = tif.pages[0]
        if page.photometric not in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.RGB):
            return None
        series = tif.series[0]
        array = series.asarray()
        axes = series.axes
    if "Y" not in axes or "X" not in axes:
        raise DataError(f"cannot decode (TIFF axes {axes}: no Y and X)")
    others = [i for i, a in enumerate(axes) if a not in "YX" and array.shape[i] > 1]
    if len(others) > 1:
        raise DataError(f"cannot decode (TIFF of shape {array.shape}, axes {axes}: more than one axis "
                        f"besides Y and X; one image of C planes is expected)")
    order = others + [axes.index("Y"), axes.index("X")]
    array = array.transpose(order + [i for i in range(array.ndim) if i not in order]).reshape(
        -1 if others else 1, array.shape[axes.index("Y")], array.shape[axes.index("X")])
    if array.dtype not in (np.uint8, np.uint16):
        raise DataError(f"cannot decode ({array.dtype} samples: only 8- and 16-bit unsigned images are read)")
    array = to_uint8(array, str(path))
    if page.photometric == tifffile.PHOTOMETRIC.RGB:
        array = array[:3]  # alpha or other extra samples dropped
    return as_image_channels(array[None])[0]


def _read_size(path: Path):
    if path.suffix.lower() in TIFF_EXTENSIONS:
        try:
            import tifffile

            with tifffile.TiffFile(readable(path)) as tif:
                series = tif.series[0]
                return series.shape[series.axes.index("X")], series.shape[series.axes.index("Y")]
        except Exception:
            pass  # Pillow may still read it
    from PIL import Image

    try:
        with Image.open(readable(path)) as image:
            return image.size
    except Exception:
        return None


def _fit(planes: np.ndarray, size: int) -> np.ndarray:
    """(C, size, size): short side resized to ``size`` (bilinear, antialiased), centre-cropped."""
    if planes.shape[-2:] == (size, size):
        return planes
    return resize_batch(torch.from_numpy(np.ascontiguousarray(planes))[None], size)[0].numpy()


def _decode(path: Path, size: int):
    """Decode one file to a (C, size, size) uint8 array, or return the reason it failed."""
    from PIL import Image, ImageOps

    tiff_error = None
    try:
        if size_of(path) == 0:
            return "empty file"
        if path.suffix.lower() in TIFF_EXTENSIONS:
            try:
                planes = read_tiff(path)
            except DataError as error:
                return str(error)
            except Exception as error:  # not a TIFF tifffile reads: Pillow may still
                planes, tiff_error = None, error
            if planes is not None:
                return _fit(planes, size)
        with Image.open(readable(path)) as image:
            image.draft("RGB", (size, size))  # JPEG: decode at reduced scale when much larger
            image = ImageOps.exif_transpose(image)  # camera orientation applied
            if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):  # 16-bit greyscale
                values = np.asarray(image)
                if values.size and (values.min() < 0 or values.max() > 65535):
                    return f"cannot decode ({image.mode} values outside 0-65535)"
                image = Image.fromarray(to_uint8(values.astype(np.uint16), str(path)), "L")
            elif image.mode == "F":
                return "cannot decode (32-bit float pixels: no fixed range to scale to 8 bits)"
            image = image.convert("RGB")
            image = ImageOps.fit(image, (size, size), Image.Resampling.BILINEAR) \
                if image.size != (size, size) else image
            return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).copy()
    except Exception as error:
        error = tiff_error or error
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

    counts = Counter(len(r) for r in decoded if not isinstance(r, str))
    channels = counts.most_common(1)[0][0] if counts else None
    kept, skipped = [], []
    for path, result in zip(files, decoded):
        if isinstance(result, str):
            skipped.append((str(path), result))
        elif len(result) != channels:
            skipped.append((str(path), f"{len(result)} channels, most images here have {channels}"))
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
