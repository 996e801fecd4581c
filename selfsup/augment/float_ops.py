"""What the table and series augmentations share: random draws with more than one number
per sample (like ``ops.rand`` they come from one generator, and under data parallelism
every process draws for the whole global batch and keeps its own rows, ``SliceDraws``),
and the recipe that standardises a batch once and makes each view from it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from selfsup.augment.ops import SliceDraws
from selfsup.data.samples import standardize


def rand_rows(generator, n: int, *shape: int) -> torch.Tensor:
    """(n, *shape) uniform draws in [0, 1)."""
    if isinstance(generator, SliceDraws):
        draws = torch.rand(generator.total, *shape, generator=generator.generator)
        return draws[generator.start:generator.start + n]
    return torch.rand(n, *shape, generator=generator)


def randn_rows(generator, n: int, *shape: int) -> torch.Tensor:
    """(n, *shape) standard normal draws."""
    if isinstance(generator, SliceDraws):
        draws = torch.randn(generator.total, *shape, generator=generator.generator)
        return draws[generator.start:generator.start + n]
    return torch.randn(n, *shape, generator=generator)


@dataclass(frozen=True)
class FloatRecipe:
    """Views of float samples: ``views`` are callables ``view(x, generator)`` on the
    standardised batch, as ``selfsup.augment.Recipe`` is for images."""

    name: str
    views: tuple

    def __call__(self, x: torch.Tensor, generator, mean, std) -> list[torch.Tensor]:
        x = standardize(x.float(), mean, std)
        return [view(x, generator) for view in self.views]
