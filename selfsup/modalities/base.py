"""The ``Modality`` interface and its registry, and what the two float modalities share."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import torch

from selfsup.data.samples import per_channel, standardize
from selfsup.errors import ConfigError

MODALITIES: dict[str, "Modality"] = {}

# per severity 1..5, as in CIFAR-10-C (Hendrycks & Dietterich 2019); for tables and series in
# units of each feature's (channel's) standard deviation
NOISE_STD = (0.08, 0.12, 0.18, 0.26, 0.38)


def register(cls):
    MODALITIES[cls.name] = cls()
    return cls


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def check_corruption(kind: str, severity: int, kinds: tuple[str, ...], plural: str) -> None:
    if kind not in ("noise", "blur", "contrast"):
        raise ConfigError(f"corruption={kind!r}: expected one of noise, blur, contrast")
    if kind not in kinds:
        raise ConfigError(f"corruption={kind!r}: only {', '.join(kinds)} applies to {plural}")
    if not 1 <= severity <= 5:
        raise ConfigError(f"severity={severity}: expected 1 to 5")


def png_uri(picture) -> str:
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


class Modality:
    name: str
    plural: str  # in messages: "images", "tables", "time series"
    sized = False  # samples are resized to an image size (else shaped by the data: input_shape)
    channels_last = False  # channels_last helps its convolutional backbones (measured for images, B3)
    mixed_precision = False  # bf16 autocast helps it where the device has bf16 units (images, B3)
    corruptions: tuple[str, ...] = ("noise",)
    formats: tuple[str, ...] = ()  # what it reads, in messages: ("a .csv/.parquet table",)

    def accepts(self, path: Path) -> bool:
        """Whether the existing file or folder ``path`` holds this modality's data."""
        return False

    def load(self, path: Path, image_size: int | None = None, label_column: str | None = None,
             cache_dir=None, data_mode: str = "memory"):
        """The source at ``path`` (one this modality ``accepts``), validated by its loader."""
        raise NotImplementedError

    def statistics(self, samples: torch.Tensor) -> tuple[list[float], list[float]]:
        """Mean and std per entry of dimension 1 (colour channel, feature, series channel)
        of raw samples (the first 10,000), with which the model input is standardised."""
        raise NotImplementedError

    def default_backbone(self, image_size: int | None) -> str:
        raise NotImplementedError

    def views(self, recipe: str, image_size: int | None = None, crop_scale=None):
        """The augmentation a method whose recipe is ``recipe`` gets on this modality."""
        from selfsup.augment.registry import BY_MODALITY

        known = BY_MODALITY[self.name]
        if recipe not in known:
            raise ValueError(f"no {self.name} views for recipe {recipe!r} (methods with recipe "
                             f"{', '.join(known)} work on {self.name} data)")
        return known[recipe]()

    def fixmatch_views(self, size: int | None, mean, std):
        """FixMatch's (weak, strong) augmentations: callables ``view(batch, generator)`` from
        raw samples to raw units (the classifier standardises them itself)."""
        raise NotImplementedError

    def corrupt(self, samples: torch.Tensor, kind: str, severity: int = 3, seed: int = 0, std=None):
        """A shifted copy of raw ``samples``: Gaussian noise of NOISE_STD[severity] in units
        of ``std`` (one value per feature or channel)."""
        check_corruption(kind, severity, self.corruptions, self.plural)
        scale = 1.0 if std is None else per_channel(std, samples)
        return samples + NOISE_STD[severity - 1] * scale * torch.randn(samples.shape, generator=seeded(seed))

    def thumbnail(self, sample: torch.Tensor, mean=None, std=None) -> str:
        """A 64 px PNG data URI of one raw sample, for the report."""
        raise NotImplementedError


class FloatModality(Modality):
    """Tables and series: float samples standardised per feature or channel."""

    weak_view = None  # built by the subclass: FixMatch's weak view on standardised values
    statistics_over: tuple[int, ...] = (0,)  # dimensions a mean and std are taken over

    def statistics(self, samples):
        x = samples[:10_000].double()
        return x.mean(dim=self.statistics_over).tolist(), x.std(dim=self.statistics_over).clamp_min(1e-6).tolist()

    def fixmatch_views(self, size, mean, std):
        strong = self.views("simclr").views[0]

        def raw_units(view):  # the float views work on standardised values; back to raw units
            return lambda x, g: view(standardize(x.float(), mean, std), g) * per_channel(std, x) + per_channel(mean, x)
        return raw_units(self.weak_view()), raw_units(strong)

    def draw(self, draw, values, to_y) -> None:
        raise NotImplementedError

    def thumbnail(self, sample, mean=None, std=None) -> str:
        """Standardised values (clipped at +-3) drawn by ``draw``."""
        from PIL import Image, ImageDraw

        from selfsup.data.samples import model_input

        values = model_input(sample[None], mean, std)[0].clamp(-3, 3)
        picture = Image.new("RGB", (64, 64), "white")
        self.draw(ImageDraw.Draw(picture), values, lambda v: 32 - float(v) * 10)
        return png_uri(picture)
