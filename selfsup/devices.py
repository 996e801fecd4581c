"""Where a model runs and in which precision, for training and for everything after it.

``check_accelerator`` refuses an accelerator this machine lacks before any work (one line,
not Lightning's traceback after the data is loaded). ``default_precision`` is what
``precision: auto`` means. A ``Placement`` is a device plus the autocast a run's model uses
on it; every command after training (evaluation, embedding, neighbours, clustering,
fine-tuning, adaptation, the report) embeds through one, by default on the device and in the
precision the run was trained with, where this machine has that device, else on the CPU.

bf16 autocast is 2x faster on a CPU with bf16 units (``avx512_bf16``/AMX) and 3x slower on
one without (emulated), so ``auto`` picks it for image backbones only where ``native_bf16``
says the device has them (BENCHMARKS.md, "Fast data path", B3).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
from torch import nn

from selfsup.errors import ConfigError

ACCELERATORS = ("cpu", "gpu", "cuda", "auto")


def cuda_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def concrete_accelerator(accelerator: str) -> str:
    """``cpu`` or ``gpu`` (CUDA): what ``accelerator`` means on this machine."""
    if accelerator == "auto":
        return "gpu" if cuda_count() else "cpu"
    return "gpu" if accelerator == "cuda" else accelerator


def device_count(devices: str, accelerator: str) -> int:
    """How many devices ``devices`` (a count, a list like ``0,1``, or ``auto``) names."""
    devices = str(devices).strip()
    if devices == "auto":
        return max(1, cuda_count()) if concrete_accelerator(accelerator) == "gpu" else 1
    if devices.isdigit():
        return int(devices)
    return len([d for d in devices.split(",") if d.strip()])


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity, as a container or ``taskset`` sets it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_accelerator(accelerator: str, devices: str = "1") -> None:
    """Raise ``ConfigError`` (one line) when ``accelerator``/``devices`` name hardware this
    machine does not have: a GPU it lacks, more GPUs than it has, or, on the CPU (where a
    device is a training process), more processes than it has cores."""
    if accelerator not in ACCELERATORS:
        raise ConfigError(f"accelerator={accelerator!r}: expected one of {', '.join(ACCELERATORS)}")
    text = str(devices).strip()
    if not (text == "auto" or text.isdigit() or all(d.strip().isdigit() for d in text.split(","))):
        raise ConfigError(f"devices={devices!r}: expected a count, a list like 0,1, or auto")
    if text.isdigit() and int(text) < 1:
        raise ConfigError(f"devices={devices}: expected at least 1")
    if concrete_accelerator(accelerator) != "gpu":
        count, cores = device_count(text, accelerator), cpu_cores()
        if count > cores:
            raise ConfigError(f"devices={devices}: on the CPU a device is a process, and this machine has {cores} "
                              f"CPU core(s); use --devices {cores} or fewer")
        return
    available = cuda_count()
    if available == 0:
        raise ConfigError(f"accelerator={accelerator}: no CUDA GPU is visible to PyTorch on this machine "
                          f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); "
                          f"use --accelerator cpu")
    wanted = [int(d) for d in text.split(",")] if "," in text else None
    if wanted is not None and max(wanted) >= available:
        raise ConfigError(f"devices={devices}: this machine has {available} GPU(s), numbered 0 to {available - 1}")
    if wanted is None and device_count(text, accelerator) > available:
        raise ConfigError(f"devices={devices}: this machine has {available} GPU(s)")


def check_inference(accelerator: str, devices: str = "1") -> None:
    """``check_accelerator`` for a command that runs a trained model: there ``devices`` are
    GPUs that split batches, so on the CPU it can only be one."""
    check_accelerator(accelerator, devices)
    if concrete_accelerator(accelerator) != "gpu" and device_count(str(devices), accelerator) > 1:
        raise ConfigError(f"devices={devices}: a model runs on the CPU as one device (--devices splits batches "
                          f"over GPUs); omit --devices")


def native_bf16(accelerator: str = "cpu") -> bool:
    """Whether ``accelerator`` computes bf16 in hardware: a CUDA GPU that supports it, or a
    CPU with ``avx512_bf16`` or AMX tiles. Without them bf16 autocast is emulated, and was
    measured 3x slower than fp32 on such a CPU (BENCHMARKS.md, B3)."""
    if concrete_accelerator(accelerator) == "gpu":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's own CPU checks
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def default_precision(modality: str = "image", accelerator: str = "cpu") -> str:
    """What ``precision: auto`` means: bf16-mixed for image backbones where the device has
    bf16 units (2x faster steps there, B3), else 32-true."""
    from selfsup import modalities

    return "bf16-mixed" if modalities.get(modality).mixed_precision and native_bf16(accelerator) else "32-true"


def cpu_bf16_hazard(model: nn.Module, sample_shape: list[int]) -> str | None:
    """The first strided convolution of ``model`` that meets a feature map one pixel wide or
    high on a sample of ``sample_shape`` (C, H, W), as ``"name (HxW input)"``; None where
    there is none. There, CPU bf16 autocast (torch 2.14's oneDNN kernels) returns garbage
    weight gradients, up to 1e35 or NaN, in the taps that only meet padding, where fp32 gives
    zeros (``benchmarks/cpu_bf16_conv.py`` measures it per geometry): a stride-32 network
    on 16 px images, such as timm's resnet18, whose layer4 sees 1x1. Flagged conservatively
    (a one-pixel height or width, any stride above 1 and kernel above 1). One forward of one
    zero sample, in eval mode; every module's mode is restored."""
    if len(sample_shape) != 3:
        return None
    found: list[str] = []

    def hook(name):
        def look(module, inputs, output):
            height, width = inputs[0].shape[-2:]
            if not found and min(height, width) == 1 and max(module.stride) > 1 and max(module.kernel_size) > 1:
                found.append(f"{name} ({height}x{width} input)")
        return look

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    modes = {m: m.training for m in model.modules()}
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *sample_shape))
    finally:
        for module, training in modes.items():
            module.training = training
        for handle in handles:
            handle.remove()
    return found[0] if found else None


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def training_device(accelerator: str) -> torch.device:
    """The device this process trains on: its local GPU under torchrun, else the CPU."""
    if concrete_accelerator(accelerator) == "gpu":
        return torch.device("cuda", local_rank())
    return torch.device("cpu")


AUTOCAST = {"bf16-mixed": torch.bfloat16, "bf16-true": torch.bfloat16, "16-mixed": torch.float16,
            "16-true": torch.float16}


@dataclass(frozen=True)
class Placement:
    """A device (the first of ``devices`` when several GPUs share inference) and the
    autocast dtype of the model's forward there (None: float32)."""

    device: torch.device
    dtype: torch.dtype | None = None
    devices: tuple[int, ...] = ()  # CUDA device ids that split inference batches (DataParallel)

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def parallel(self, model: nn.Module) -> nn.Module:
        """``model`` on the device; split over ``devices`` for inference when several."""
        model = model.to(self.device)
        return nn.DataParallel(model, device_ids=list(self.devices)) if len(self.devices) > 1 else model

    def single(self) -> "Placement":
        """The same on its first device alone: training steps and online updates do not split
        batches over devices."""
        return Placement(self.device, self.dtype)

    def __str__(self) -> str:
        where = f"cuda:{','.join(map(str, self.devices))}" if len(self.devices) > 1 else str(self.device)
        return f"{where}, {'float32' if self.dtype is None else str(self.dtype).removeprefix('torch.')}"


CPU = Placement(torch.device("cpu"))


def placement(accelerator: str | None = None, devices: str | None = None, *, trained_on: str = "cpu",
              trained_precision: str = "32-true", modality: str = "image") -> Placement:
    """Where a trained model runs after training. ``accelerator`` None: the one it was
    trained on (``trained_on``) when this machine has it, else the CPU. The precision is the
    training's on the same kind of device, else what ``auto`` picks for the device."""
    explicit = accelerator is not None
    accelerator = accelerator or trained_on
    if not explicit and concrete_accelerator(accelerator) == "gpu" and not cuda_count():
        accelerator = "cpu"  # trained on a GPU, used on a machine without one
    devices = "1" if devices is None else str(devices)
    check_inference(accelerator, devices)
    kind = concrete_accelerator(accelerator)
    same_kind = kind == concrete_accelerator(trained_on)
    precision = trained_precision if same_kind else default_precision(modality, kind)
    if precision == "auto":
        precision = default_precision(modality, kind)
    if kind != "gpu":
        dtype = AUTOCAST.get(precision)
        return Placement(torch.device("cpu"), dtype if dtype == torch.bfloat16 and native_bf16("cpu") else None)
    text = devices.strip()
    ids = tuple(int(d) for d in text.split(",")) if "," in text else tuple(range(device_count(text, kind)))
    return Placement(torch.device("cuda", ids[0]), AUTOCAST.get(precision), ids)
