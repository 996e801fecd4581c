"""Training switches that change speed, not results beyond float rounding.

Measured on this project's 2-core CPU machine (BENCHMARKS.md, "Fast data path", B3): for
the small CNN at 32 px, channels_last and ``torch.compile`` of the backbone each made the
backbone's forward+backward clearly faster, bf16 autocast made it slower (no bf16 units on
that CPU; on a later machine with ``avx512_bf16`` it was 3x faster: ``--precision
bf16-mixed``). channels_last was then measured 24-41% faster on two different CPUs and is
on by default for convolutional image backbones (``resolve`` in ``train/run.py``); it picks
other convolution kernels for other batch sizes, so a run split over processes matches one
process to ~2e-5 instead of 1e-5 (the torchrun test turns it off). Compiling stays off: it
costs tens of seconds up front and again for the evaluation's batch shapes.
"""

from __future__ import annotations

import torch
from torch import nn


def _to_channels_last(module, args):
    return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])


def apply_speed_switches(method: nn.Module, channels_last: bool = False, compile: bool = False) -> nn.Module:
    """Put ``method``'s backbone in channels_last memory format (weights and inputs) and/or
    compile it in place (parameter names, hence checkpoints, are unchanged)."""
    if channels_last:
        method.to(memory_format=torch.channels_last)
        method.backbone.register_forward_pre_hook(_to_channels_last)
    if compile:
        method.backbone.compile()
    return method
