"""Losses run in float32, also inside a bf16/fp16 autocast region.

Mixed precision pays off in the backbone's convolutions and matrix products; the losses
are a sliver of a step's time but hold the numerically delicate parts: Cholesky whitening
(W-MSE, which bf16 cannot run at all), Sinkhorn's exponentials (SwAV), cross-correlation and
covariance matrices (Barlow Twins, VICReg), softmaxes over a whole batch with a small
temperature. ``float32`` turns autocast off inside the loss and casts its bf16/fp16 tensor
arguments (also inside lists and tuples) to float32; gradients flow back through the cast.
"""

from __future__ import annotations

import functools

import torch


HALF = (torch.bfloat16, torch.float16)


def _to_float32(value):
    if isinstance(value, torch.Tensor):
        return value.float() if value.dtype in HALF else value  # float64 stays float64
    if isinstance(value, (list, tuple)):
        return type(value)(_to_float32(v) for v in value)
    return value


def _tensors(values):
    for value in values:
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, (list, tuple)):
            yield from _tensors(value)


def _device_type(values) -> str:
    """The device type of the first tensor among ``values`` (lists and tuples searched)."""
    return next((t.device.type for t in _tensors(values)), "cpu")


def float32(loss):
    """Decorate ``loss`` to compute in float32 whatever autocast is active."""
    @functools.wraps(loss)
    def in_float32(*args, **kwargs):
        with torch.autocast(_device_type([*args, *kwargs.values()]), enabled=False):
            return loss(*_to_float32(args), **{k: _to_float32(v) for k, v in kwargs.items()})
    return in_float32
