"""Pretrained starts (``init``): backbone weights read from a file or folder and loaded
strictly into a freshly built backbone, before the method copies it (EMA targets, ...).

Accepted, all read without running code (safetensors, or ``torch.load(weights_only=True)``):

- a ``.safetensors`` file of the backbone's weights with clean keys (``selfsup export
  --format safetensors``, or any library's state dict), or a checkpoint's
  ``weights.safetensors`` (keys ``method.backbone.…``);
- a ``.pt``/``.pth`` file of such a state dict;
- a folder holding ``model.safetensors`` (timm's folder of ``config.json`` +
  ``model.safetensors``, and what ``selfsup export`` writes for timm and torchvision);
- a checkpoint directory (``weights.safetensors``), or a run directory: its last checkpoint.

Clean keys load into the library's model inside the backbone (``weights_module``), a
checkpoint's into the backbone itself. A mismatch is one line naming the first missing
and unexpected keys (or the first tensor of another shape).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from selfsup.backbones import weights_module
from selfsup.errors import ConfigError
from selfsup.train.checkpoint import WEIGHTS, CheckpointError, last_checkpoint, load_weights

BACKBONE_PREFIX = "method.backbone."  # how a checkpoint's weights name the backbone's


def read_init(path: str) -> tuple[dict[str, torch.Tensor], bool]:
    """(state dict, whether its keys are the whole backbone's) of ``init=path``."""
    where = Path(path)
    try:
        if where.is_dir() and (where / "config.yaml").is_file() and (where / "checkpoints").is_dir():
            return _backbone_of(load_weights(last_checkpoint(where / "checkpoints")), path), True
        if where.is_dir() and (where / WEIGHTS).is_file():
            return _backbone_of(load_weights(where), path), True
        if where.is_dir() and (where / "model.safetensors").is_file():
            return _read_safetensors(where / "model.safetensors", path)
        if where.is_file() and where.suffix == ".safetensors":
            return _read_safetensors(where, path)
        if where.is_file() and where.suffix in (".pt", ".pth", ".bin"):
            return _read_torch(where, path), False
    except CheckpointError as error:
        raise ConfigError(f"init={path!r}: {error}") from None
    if not where.exists():
        raise ConfigError(f"init={path!r}: no such file or folder")
    raise ConfigError(f"init={path!r}: expected a .safetensors or .pth file, a folder with model.safetensors, "
                      f"a checkpoint or a run directory")


def _backbone_of(weights: dict, path: str) -> dict:
    state = {k.removeprefix(BACKBONE_PREFIX): v for k, v in weights.items() if k.startswith(BACKBONE_PREFIX)}
    if not state:
        raise ConfigError(f"init={path!r}: the checkpoint holds no backbone weights ({BACKBONE_PREFIX}*)")
    return state


def _read_safetensors(file: Path, path: str) -> tuple[dict, bool]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(file)
    except (SafetensorError, OSError, ValueError) as error:
        raise ConfigError(f"init={path!r}: cannot be read as safetensors ({error})") from None
    if state and all(k.startswith("method.") for k in state):  # a checkpoint's weights.safetensors
        return _backbone_of(state, path), True
    return state, False


def _read_torch(file: Path, path: str) -> dict:
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)  # tensors and containers only
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as error:
        raise ConfigError(f"init={path!r}: cannot be read as a weights-only torch file "
                          f"({str(error).splitlines()[0]})") from None
    for key in ("state_dict", "model"):  # the usual wrappers of a state dict
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"init={path!r}: expected a state dict of tensors")
    return state


def load_state_strictly(module: nn.Module, state: dict, where: str, what: str) -> None:
    """``module.load_state_dict(state, strict=True)``, refusing a mismatch in one line."""
    own = module.state_dict()
    missing, unexpected = [k for k in own if k not in state], [k for k in state if k not in own]
    if missing or unexpected:
        raise ConfigError(f"{where}: weights do not match {what} (missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]}; {len(missing)} missing, {len(unexpected)} unexpected)")
    for key, tensor in own.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise ConfigError(f"{where}: weights do not match {what} ({key}: shape {tuple(state[key].shape)}, "
                              f"expected {tuple(tensor.shape)})")
    module.load_state_dict(state, strict=True)


def load_init(backbone: nn.Module, path: str, name: str) -> None:
    """Load ``init=path`` into ``backbone`` (named ``name``) strictly."""
    state, whole = read_init(path)
    target = backbone if whole else weights_module(backbone)
    load_state_strictly(target, state, f"init={path!r}", f"backbone {name}")
