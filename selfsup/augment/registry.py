"""View recipes by modality and name. Each recipe registers itself where it is defined. A
recipe is named after the methods' ``recipe`` attribute it serves, so on tables and series
one builder can serve several (SimCLR's and BYOL's two views are made the same way there)."""

from __future__ import annotations

from typing import Callable

BY_MODALITY: dict[str, dict[str, Callable]] = {"image": {}, "table": {}, "timeseries": {}}


def register(modality: str, *names: str):
    """Function decorator: the builder becomes recipe ``names`` of ``modality`` (default: the
    function's own name)."""
    if modality not in BY_MODALITY:
        raise ValueError(f"unknown modality {modality!r}; expected one of {', '.join(BY_MODALITY)}")

    def decorate(build: Callable) -> Callable:
        recipes = BY_MODALITY[modality]
        for name in names or (build.__name__,):
            if name in recipes:
                raise ValueError(f"{modality} recipe {name!r} is registered twice")
            recipes[name] = build
        return build
    return decorate
