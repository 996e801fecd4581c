"""Backbones by name. Each builder registers itself where it is defined, with its
modality, and every builder is called the same way, ``build(small_stem=..., image_size=...,
input_shape=...)``: it takes the keywords it needs and ignores the rest, so ``create`` never
has to know which kind of backbone it is building. A builder's other keyword arguments
with defaults are its ``options`` (``builder_options``; the widths of ``dilated_cnn``).
``timm/NAME`` and ``torchvision/NAME`` are image backbones built by their library
(``selfsup.backbones.external``), with its keyword arguments as ``options``."""

from __future__ import annotations

import inspect
from typing import Callable

from torch import nn

from selfsup.backbones.external import create_external, is_external
from selfsup.errors import ConfigError

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


def modality(name: str) -> str:
    """The modality of backbone ``name`` (KeyError if it is none)."""
    return "image" if is_external(name) else MODALITY[name]


def known(name: str) -> bool:
    """Whether ``name`` is a registered backbone or has a library prefix (``timm/``,
    ``torchvision/``; whether the library has that model is ``external.check_name``'s)."""
    return name in MODALITY or is_external(name)


def default_small_stem(name: str) -> bool:
    """On for built-in backbones (of which only the ResNets have a stem to change: the usual
    one for 32-96 px images), off for a library's model, which keeps its own architecture so
    that its weights load back there."""
    return not is_external(name)


COMMON = {"small_stem", "image_size", "input_shape"}  # what every builder is called with


def builder_options(name: str) -> dict:
    """The options of built-in backbone ``name`` and their defaults (none for most)."""
    return {key: p.default for key, p in inspect.signature(BUILDERS[name]).parameters.items()
            if key not in COMMON and p.default is not inspect.Parameter.empty}


def check_builder_options(name: str, options: dict) -> None:
    """ConfigError unless every one of ``options`` is an option of ``name`` with a value of
    its default's type."""
    accepted = builder_options(name) if name in BUILDERS else {}
    for key, value in options.items():
        if key not in accepted:
            takes = f"takes {', '.join(accepted)}" if accepted else "takes none"
            raise ConfigError(f"backbone_options={options!r}: {name} {takes}; a library's backbone "
                              f"(timm/NAME, torchvision/NAME) takes its library's keyword arguments")
        default = accepted[key]
        if type(value) is not type(default) and not (isinstance(default, float) and type(value) is int):
            raise ConfigError(f"backbone_options.{key}={value!r}: expected {type(default).__name__}")


def create(name: str, small_stem: bool | None = None, image_size: int = 224, input_shape=None,
           options: dict | None = None) -> nn.Module:
    """``small_stem`` concerns the ResNets (default: ``default_small_stem(name)``);
    ``image_size`` the ViTs, whose patch grid and positional embeddings are fixed by it (the
    CNNs take any size); ``input_shape`` the table and series backbones, and the channels of
    images, (C, H, W) (default 3); ``options`` the
    keyword arguments of a ``timm/`` or ``torchvision/`` model."""
    if small_stem is None:
        small_stem = default_small_stem(name)
    if is_external(name):
        channels = int(input_shape[0]) if input_shape else 3  # an image's input_shape is (C, H, W)
        return create_external(name, image_size, small_stem, options, channels)
    if name not in BUILDERS:
        raise ValueError(f"unknown backbone {name!r}; available: {', '.join(MODALITY)}")
    check_builder_options(name, options or {})
    if MODALITY[name] != "image" and not input_shape:  # table and series layers are sized by the data
        raise ValueError(f"backbone {name!r} needs the input shape of the data")
    return BUILDERS[name](small_stem=small_stem, image_size=image_size,
                          input_shape=list(input_shape) if input_shape else None, **(options or {}))
