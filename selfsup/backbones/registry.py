"""Backbones by name. Each builder registers itself where it is defined, with its
modality, and every builder is called the same way, ``build(small_stem=..., image_size=...,
input_shape=...)``: it takes the keywords it needs and ignores the rest, so ``create`` never
has to know which kind of backbone it is building."""

from __future__ import annotations

from typing import Callable

from torch import nn

BUILDERS: dict[str, Callable[..., nn.Module]] = {}
MODALITY: dict[str, str] = {}  # name -> "image", "table" or "timeseries", in registration order


def register(modality: str):
    """Function decorator: the builder becomes backbone ``<function name>`` for ``modality``."""
    def decorate(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = build.__name__
        if name in BUILDERS:
            raise ValueError(f"backbone {name!r} is registered twice")
        BUILDERS[name], MODALITY[name] = build, modality
        return build
    return decorate


def create(name: str, small_stem: bool = True, image_size: int = 224, input_shape=None) -> nn.Module:
    """``small_stem`` concerns the ResNets; ``image_size`` the ViTs, whose patch grid and
    positional embeddings are fixed by it (the CNNs take any size); ``input_shape`` the
    table and series backbones."""
    if name not in BUILDERS:
        raise ValueError(f"unknown backbone {name!r}; available: {', '.join(MODALITY)}")
    if MODALITY[name] != "image" and not input_shape:  # table and series layers are sized by the data
        raise ValueError(f"backbone {name!r} needs the input shape of the data")
    return BUILDERS[name](small_stem=small_stem, image_size=image_size,
                          input_shape=list(input_shape) if input_shape else None)
