"""One object per modality (image, table, time series) that knows what differs between
them: its default backbone, which training switches help it, its views per recipe,
FixMatch's weak and strong views, its test-time corruptions and its report thumbnail.
Code elsewhere asks ``modalities.get(source.modality)`` instead of testing names or dtypes;
a new modality is one new file here (plus its loader in ``selfsup.data``).
"""

from __future__ import annotations

from selfsup.modalities.base import MODALITIES, Modality, register
from selfsup.modalities import image, table, timeseries  # noqa: F401  (each registers itself)


def get(name: str) -> Modality:
    if name not in MODALITIES:
        raise ValueError(f"unknown modality {name!r}; known: {', '.join(MODALITIES)}")
    return MODALITIES[name]


__all__ = ["MODALITIES", "Modality", "get", "register"]
