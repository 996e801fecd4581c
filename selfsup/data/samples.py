"""Sources of float samples (tables and time series), and the one input preparation every
modality shares.

An image source holds (N, C, H, W) uint8 pixels (``selfsup.data.sources.ImageSource``); a
table source (N, F) float32 features; a time-series source (N, C, T) float32 values. Each
has ``samples``, ``modality``, ids and optional labels (evaluation only); training,
monitors and evaluation use only these (and ``selfsup.modalities.get(source.modality)``
for what differs, such as the statistics), so none of them needs modality-specific code. ``model_input`` turns a batch of raw samples into what a
backbone takes: uint8 pixels become [0, 1] floats, then every modality is standardised
along dimension 1 (colour channels, table features, series channels).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from selfsup.data.base import DataError

MODALITIES = ("image", "table", "timeseries")


def per_channel(values, like: torch.Tensor) -> torch.Tensor:
    """One value per entry of dimension 1 of ``like`` (colour channel, table feature, series
    channel), shaped to broadcast against it, for any rank."""
    values = torch.as_tensor(values, device=like.device, dtype=like.dtype)
    return values.reshape((1, -1) + (1,) * (like.ndim - 2))


def standardize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """(x - mean) / std with one mean and std per entry of dimension 1, for any rank."""
    return (x - per_channel(mean, x)) / per_channel(std, x)


def as_unit(batch: torch.Tensor) -> torch.Tensor:
    """Raw samples as floats: uint8 pixels to [0, 1], table and series values as they are."""
    return batch.float().div_(255) if batch.dtype == torch.uint8 else batch.float()


def model_input(batch: torch.Tensor, mean, std) -> torch.Tensor:
    """A batch of raw samples as a backbone takes it (no augmentation)."""
    return standardize(as_unit(batch), mean, std)


@dataclass
class FloatSource:
    """Samples of a table (``modality="table"``, (N, F)) or of time series
    (``modality="timeseries"``, (N, C, T)); ``features`` names the columns or channels."""

    name: str
    samples: torch.Tensor
    ids: list[str]
    labels: torch.Tensor | None = None
    classes: list[str] | None = None
    modality: str = "table"
    features: list[str] | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason), as for images
    # series of unequal length as read ((C, T_i) arrays), kept so that a run can resample them to
    # the length it was trained on (``selfsup.data.timeseries.resampled_to``); None otherwise
    unequal_series: list | None = field(default=None, repr=False)

    image_size = None  # not an image: no side to resize to

    def __post_init__(self):
        rank = {"table": 2, "timeseries": 3}.get(self.modality)
        if rank is None:
            raise DataError(f"{self.name}: modality must be table or timeseries, got {self.modality!r}")
        if self.samples.dtype != torch.float32 or self.samples.ndim != rank:
            raise DataError(f"{self.name}: {self.modality} samples must be a float32 tensor of rank "
                            f"{rank}, got {tuple(self.samples.shape)} {self.samples.dtype}")
        if len(self.samples) == 0:
            raise DataError(f"{self.name}: no samples")
        if not torch.isfinite(self.samples).all():
            raise DataError(f"{self.name}: samples hold NaN or infinite values after loading")
        if len(self.ids) != len(self.samples):
            raise DataError(f"{self.name}: {len(self.ids)} ids for {len(self.samples)} samples")
        if self.labels is not None and len(self.labels) != len(self.samples):
            raise DataError(f"{self.name}: {len(self.labels)} labels for {len(self.samples)} samples")

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def input_shape(self) -> list[int]:
        return list(self.samples.shape[1:])

    def subset(self, index) -> "FloatSource":
        index = torch.as_tensor(index, dtype=torch.long)
        return FloatSource(self.name, self.samples[index], [self.ids[i] for i in index.tolist()],
                           None if self.labels is None else self.labels[index], self.classes,
                           self.modality, self.features, self.skipped)


def labels_from_values(values, name: str):
    """Class indices and class names of a label array (any comparable values)."""
    import numpy as np

    values = np.asarray(values)
    if values.ndim != 1:
        raise DataError(f"{name}: labels must be one-dimensional, got shape {values.shape}")
    classes, index = np.unique(values.astype(str) if values.dtype == object else values, return_inverse=True)
    return torch.from_numpy(index.astype(np.int64)), [str(c) for c in classes]
