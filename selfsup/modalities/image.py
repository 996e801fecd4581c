"""Images: (N, C, H, W) uint8 pixels (C = 3 for colour and greyscale, other counts such as
multispectral bands kept), resized to one side; the batched image recipes
(``selfsup.augment.recipes``, per-channel brightness and contrast when C != 3), a small
CNN up to 64 px and ResNet-18 above, built for C input channels.

Corruptions in the spirit of CIFAR-10-C (Hendrycks & Dietterich 2019): Gaussian noise,
Gaussian blur and contrast reduction at 5 severities.
"""

from __future__ import annotations

import torch

from selfsup.data.sources import ImageSource, load_array_source, load_folder_source  # registers the built-in images
from selfsup.data.arrays import array_kind
from selfsup.progress import stage
from selfsup.modalities.base import NOISE_STD, Modality, check_corruption, png_uri, register, seeded

# per severity 1..5; contrast factor as in CIFAR-10-C, blur sigma in pixels of 32 px images
BLUR_SIGMA = (0.5, 0.75, 1.0, 1.5, 2.0)
CONTRAST = (0.75, 0.5, 0.4, 0.3, 0.15)


def weak_view(size: int):
    """FixMatch's weak augmentation: a mild random crop and a flip, no colour change."""
    from selfsup import augment

    return augment.ViewSpec(size, crop_scale=(0.5, 1.0), jitter_p=0.0, grayscale_p=0.0)


def strong_view(size: int, crop_min_scale: float = 0.25):
    """The SimCLR recipe's view (colour distortion of strength 1, grayscale, blur above
    32 px) with a milder crop: a box of 8% of a small image rarely keeps the object, and the
    pseudo-label would then train on noise."""
    from selfsup import augment

    return augment.create("simclr", size, crop_scale=(crop_min_scale, 1.0), jitter_strength=1.0).views[0]


def fits_in_memory(source) -> bool:
    """Whether the decoded (C, size, size) uint8 images of a streamed ``source`` take at
    most a quarter of RAM."""
    import os

    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return len(source) * source.channels * source.image_size ** 2 <= ram / 4


@register
class Image(Modality):
    name = "image"
    plural = "images"
    sized = True
    channels_last = True
    mixed_precision = True
    corruptions = ("noise", "blur", "contrast")
    formats = ("a folder of images", "WebDataset .tar shards", "a Parquet file of encoded images",
               "an integer .npy/.npz array")

    def accepts(self, path) -> bool:
        from selfsup.data.parquet_images import image_column
        from selfsup.data.shards import is_shards

        if path.is_dir() or is_shards(path):
            return True
        if path.is_file() and path.suffix.lower() in (".parquet", ".pq"):
            return image_column(path) is not None
        if not (path.is_file() and path.suffix in (".npy", ".npz")):
            return False
        kind, _ = array_kind(path)
        return kind == "image" or kind is None  # None: the image loader says what is wrong

    def load(self, path, image_size=None, label_column=None, cache_dir=None, data_mode="memory"):
        """A folder, tar shards or a Parquet file of encoded images (streamed with
        ``data_mode="stream"``, or with ``"auto"`` when the decoded images would take more
        than a quarter of RAM; else decoded, a folder through the decoded-image cache in
        ``cache_dir`` when given) or an array."""
        from selfsup.data.parquet_images import open_parquet_images
        from selfsup.data.shards import is_shards, open_shards

        shards = is_shards(path)  # scans a folder's entries: once
        if shards or path.suffix.lower() in (".parquet", ".pq"):  # streamed, or decoded when small
            streamed = open_shards(str(path), image_size) if shards else open_parquet_images(path, image_size, label_column)
            if data_mode == "stream" or (data_mode == "auto" and not fits_in_memory(streamed)):
                return streamed
            images = streamed.samples[:]  # an unreadable member is named, added to skipped and dropped here
            bad = {f for f, _ in streamed.skipped}
            keep = [i for i, name in enumerate(streamed.ids) if name not in bad]
            return ImageSource(streamed.name, images[keep], [streamed.ids[i] for i in keep],
                               None if streamed.labels is None else streamed.labels[keep], streamed.classes,
                               streamed.skipped)
        if not path.is_dir():
            return load_array_source(path, image_size)
        if data_mode != "memory":
            from selfsup.data.stream import open_stream

            streamed = open_stream(path, image_size)
            if data_mode == "stream" or not fits_in_memory(streamed):
                return streamed
            # the in-memory folder chooses its own default size (the median of every file, not of
            # the index's first 256) and its own cache key, as with data_mode="memory"
            stage("%d images of %d px fit in a quarter of RAM: decoding them into memory", len(streamed),
                  streamed.image_size)
        if cache_dir is None:
            return load_folder_source(path, image_size)
        from pathlib import Path

        from selfsup.data.cache import cached_folder_source

        return cached_folder_source(path, image_size, Path(cache_dir))

    def statistics(self, samples):
        """In [0, 1] units, per channel; of the first 10,000 images in memory, of the first
        1,000 of a streamed folder (each decoded for it)."""
        x = samples[:10_000 if isinstance(samples, torch.Tensor) else 1_000].float().div_(255)
        return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()

    def default_backbone(self, image_size: int | None) -> str:
        return "smallcnn" if image_size <= 64 else "resnet18"

    def views(self, recipe: str, image_size: int | None = None, crop_scale=None):
        from selfsup import augment

        return augment.create(recipe, image_size, **({} if crop_scale is None else {"crop_scale": crop_scale}))

    def fixmatch_views(self, size, mean, std):
        from selfsup import augment

        def view(spec):  # make_view normalises; the classifier does that itself
            return lambda x, g: augment.make_view(x, spec, g, [0.0] * x.shape[1], [1.0] * x.shape[1])
        return view(weak_view(size)), view(strong_view(size))

    def corrupt(self, samples: torch.Tensor, kind: str, severity: int = 3, seed: int = 0, std=None):
        """A corrupted uint8 copy of uint8 images."""
        from selfsup.augment import ops
        from selfsup.data.samples import as_unit

        check_corruption(kind, severity, self.corruptions, self.plural)
        x, n, level = as_unit(samples), len(samples), severity - 1
        if kind == "noise":
            x = x + NOISE_STD[level] * torch.randn(x.shape, generator=seeded(seed))
        elif kind == "blur":  # kernel spans 30% of the side, so that sigma 2 px is not truncated at 32 px
            sigma = BLUR_SIGMA[level] * samples.shape[-1] / 32
            x = ops.gaussian_blur(x, seeded(seed), p=1.0, sigma=(sigma, sigma), kernel_fraction=0.3)
        elif x.shape[1] != 3:  # contrast of non-RGB channels: blend each with its own mean
            x = CONTRAST[level] * x + (1 - CONTRAST[level]) * x.mean(dim=(2, 3), keepdim=True)
        else:  # contrast: blend with the mean luma, the same transform as colour jitter
            ones = torch.ones(n)
            x = ops.apply_color(x, *ops.color_transform(ones, torch.full((n,), CONTRAST[level]), ones))
        return x.clamp_(0, 1).mul_(255).round_().to(torch.uint8)

    def thumbnail(self, sample, mean=None, std=None) -> str:
        """The image; of one that is not RGB (C != 3), its first channel in grey."""
        from PIL import Image as PILImage

        pixels = sample.permute(1, 2, 0).numpy() if len(sample) == 3 else sample[0].numpy()
        picture = PILImage.fromarray(pixels).resize((64, 64), PILImage.Resampling.NEAREST)
        return png_uri(picture)
