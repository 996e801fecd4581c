"""Methods by name. Each method class registers itself where it is defined, so adding a
method is one new file (and its module name in ``selfsup/methods/__init__.py``)."""

from __future__ import annotations

from torch import nn

from selfsup.methods.base import Method

METHODS: dict[str, type[Method]] = {}  # name -> Method subclass, in the order the modules are imported


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make ``cls`` buildable as ``create(cls.name, backbone)``."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} needs a name to be registered")
    if cls.name in METHODS:
        raise ValueError(f"method {cls.name!r} is registered twice: by {METHODS[cls.name].__qualname__} "
                         f"and {cls.__qualname__}")
    METHODS[cls.name] = cls
    return cls


def create(name: str, backbone: nn.Module, **options) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(METHODS)}")
    return METHODS[name](backbone, **options)
