"""Training switches that change speed, not results beyond float rounding.

Measured on this project's 2-core CPU machines (BENCHMARKS.md, "Fast data path", B3):
channels_last made the small CNN's and ResNet-18's forward+backward 19-41% faster on two
different CPUs and is on by default for convolutional image backbones (``resolve`` in
``train/run.py``); it picks other convolution kernels for other batch sizes, so a run split
over processes matches one process to ~2e-5 instead of 1e-5 (the torchrun test turns it
off). bf16 autocast (``precision: auto``) is chosen in ``selfsup.devices``. ``torch.compile``
of the backbone helped the small CNN but costs tens of seconds up front and again for the
evaluation's batch shapes, so it stays off.

``keep_freed_memory``: on Linux, glibc's malloc maps large blocks (a batch of 256 CIFAR
images is 3 MB as float) on their own or trims them off the heap when freed, handing the
memory back to the kernel, so step after step the pages of batch-sized tensors are faulted
in again. Keeping freed memory for reuse measured 2.8x faster SimCLR augmentation and 21%
faster small-CNN forward+backward on 2 cores (BENCHMARKS.md, "Fast data path"): the effect
PyTorch's CPU tuning guide gets from preloading jemalloc or tcmalloc.
"""

from __future__ import annotations

import ctypes
import platform

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


# mallopt parameters, from glibc's malloc.h
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for the next allocation instead of returning it
    to the kernel (no ``mmap`` for large blocks, no trimming of the heap below 2 GiB free).
    The process's memory then stays at its peak, as with a caching allocator. Process-wide
    and idempotent; returns False where the C library is not glibc (nothing changed)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


def default_channels_last(backbone: str, modality: str = "image") -> bool:
    """On for convolutional backbones of a modality it helps (images, measured faster, B3);
    ViT tokens are 3-D (``vit_*``, and ``timm/vit_*``, ``torchvision/vit_*``)."""
    from selfsup import modalities

    return modalities.get(modality).channels_last and not backbone.rpartition("/")[2].startswith("vit")
