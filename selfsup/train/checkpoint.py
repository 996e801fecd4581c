"""Checkpoints without pickle, written atomically.

A checkpoint is a directory:

    weights.safetensors     the model's state_dict (loadable anywhere with safetensors)
    state.safetensors       every other tensor of the training state (optimizer moments, ...)
    state.json              the rest of the training state (loops, schedulers, RNG seeds,
                            callback states) as JSON, tensors referenced by key

Nothing in it can run code when loaded. It is written to a temporary sibling directory,
fsynced, then renamed into place, so a reader never sees a half-written checkpoint; the
``last`` link in the checkpoints directory is only moved after that (see ``link_last``).

``SafeCheckpointIO`` plugs the format into Lightning, so the Trainer saves and restores
its complete state (optimizer, schedulers, loop progress) through it.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from selfsup.errors import CheckpointError  # noqa: F401  (raised here, caught by the CLI)



class IncompleteCheckpoint(CheckpointError):
    """A checkpoint that is not there (a dangling link) or lacks one of its files (a kill
    during its write): a resume falls back to an older one; anything else is refused."""


WEIGHTS, STATE_TENSORS, STATE_JSON = "weights.safetensors", "state.safetensors", "state.json"
FORMAT = "selfsup-checkpoint-1"


def _encode(value: Any, tensors: dict[str, torch.Tensor], where: str):
    if isinstance(value, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(value, dict):
        return {"__dict__": [[_encode(k, tensors, where), _encode(v, tensors, f"{where}.{k}")]
                             for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise CheckpointError(f"cannot store {where} of type {type(value).__name__} in a checkpoint")


def _decode(value: Any, tensors: dict[str, torch.Tensor]):
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if "__tuple__" in value:
            return tuple(_decode(v, tensors) for v in value["__tuple__"])
        if "__dict__" in value:
            return {_decode(k, tensors): _decode(v, tensors) for k, v in value["__dict__"]}
        raise CheckpointError(f"unknown entry in checkpoint state: {sorted(value)}")
    return value


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(checkpoint: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``checkpoint`` (a Lightning-style dict) atomically to directory ``path``."""
    path = Path(path)
    checkpoint = dict(checkpoint)
    weights = {k: v.detach().cpu().contiguous().clone() for k, v in checkpoint.pop("state_dict", {}).items()}
    tensors: dict[str, torch.Tensor] = {}
    structure = {"format": FORMAT, "state": _encode(checkpoint, tensors, "checkpoint")}

    temporary = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    temporary.mkdir(parents=True)
    try:
        save_file(weights, temporary / WEIGHTS)
        save_file(tensors, temporary / STATE_TENSORS)
        (temporary / STATE_JSON).write_text(json.dumps(structure))
        for name in (WEIGHTS, STATE_TENSORS, STATE_JSON):
            _fsync(temporary / name)
        _fsync(temporary)
        if path.exists():  # replacing a checkpoint of the same name: move the old one aside first
            old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(path, old)
            os.replace(temporary, path)
            shutil.rmtree(old)
        else:
            os.replace(temporary, path)
        _fsync(path.parent)
    except (OSError, SafetensorError) as error:
        shutil.rmtree(temporary, ignore_errors=True)
        reason = getattr(error, "strerror", None) or str(error)
        raise CheckpointError(f"cannot write checkpoint {path}: {reason}") from None
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def remove_stale_temporaries(directory: Path) -> None:
    """Delete what a write killed half-way left behind (never a complete checkpoint)."""
    directory = Path(directory)
    for stale in [*directory.glob(".*.tmp-*"), *directory.glob(".*.old-*")]:
        if stale.is_symlink() or stale.is_file():
            stale.unlink()
        else:
            shutil.rmtree(stale, ignore_errors=True)


def load_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The model state_dict of checkpoint directory ``path`` (safetensors, no pickle)."""
    file = Path(path) / WEIGHTS
    if not file.is_file():
        raise CheckpointError(f"{path}: not a selfsup checkpoint (no {WEIGHTS})")
    try:
        return load_file(file)
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{file}: cannot be read as safetensors ({error})") from None


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    for name in (WEIGHTS, STATE_TENSORS, STATE_JSON):
        if not (path / name).is_file():
            raise IncompleteCheckpoint(f"{path}: not a complete selfsup checkpoint (no {name})")
    try:
        structure = json.loads((path / STATE_JSON).read_text())
        tensors = load_file(path / STATE_TENSORS)
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: cannot read checkpoint state ({error})") from None
    if not isinstance(structure, dict) or structure.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format (expected {FORMAT})")
    checkpoint = _decode(structure["state"], tensors)
    _check_state(checkpoint, path / STATE_JSON)
    checkpoint["state_dict"] = load_weights(path)
    return checkpoint


STATE_TYPES = {"epoch": (int, "an integer >= 0"), "global_step": (int, "an integer >= 0"),
               "loops": (dict, "a mapping"), "callbacks": (dict, "a mapping"),
               "optimizer_states": (list, "a list"), "lr_schedulers": (list, "a list")}


def _check_state(checkpoint, file: Path) -> None:
    """The fields Lightning restores from, with the types it expects (one line naming the field)."""
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{file}: the state is a {type(checkpoint).__name__}, expected a mapping")
    for name, (expected, words) in STATE_TYPES.items():
        if name not in checkpoint:
            continue
        value = checkpoint[name]
        if not isinstance(value, expected) or isinstance(value, bool) or (expected is int and value < 0):
            raise CheckpointError(f"{file}: {name} is {value!r}, expected {words}")
    for name in ("optimizer_states", "lr_schedulers"):
        for i, entry in enumerate(checkpoint.get(name, ())):
            if not isinstance(entry, dict):
                raise CheckpointError(f"{file}: {name}[{i}] is {entry!r}, expected a mapping")


def last_checkpoint(directory: str | os.PathLike) -> Path:
    """The checkpoint ``directory/last`` links, inside ``directory`` (a link that leaves it
    is refused, not followed)."""
    directory = Path(directory)
    last = directory / "last"
    if not last.is_symlink() and not last.exists():
        raise CheckpointError(f"{directory.parent}: no checkpoint yet ({directory.name}/last is missing)")
    target = last.resolve()
    if not target.is_relative_to(directory.resolve()):
        raise CheckpointError(f"{last}: links {target}, which leaves the run directory; refused")
    if not target.exists():
        raise IncompleteCheckpoint(f"{last}: links {os.readlink(last)}, which does not exist")
    return target


def _complete(path: Path) -> bool:
    try:
        load_checkpoint(path)
    except IncompleteCheckpoint:
        return False
    return True


def resume_point(directory: str | os.PathLike) -> Path | None:
    """The checkpoint a resumed run continues from: the one ``last`` links; when that is
    missing or incomplete, the newest complete ``epoch-*`` (with a warning); ``None``
    (with a warning) when there is none, and the run starts from its first epoch."""
    directory = Path(directory)
    last = directory / "last"
    if last.is_symlink() or last.exists():
        try:
            target = last_checkpoint(directory)
            load_checkpoint(target)
            return target
        except IncompleteCheckpoint as error:  # a foreign link or a corrupt state is refused, never skipped
            problem = str(error)
    else:
        problem = f"{last} is missing"
    candidates = sorted((p for p in directory.glob("epoch-*") if p.is_dir() and not p.is_symlink()), reverse=True)
    newest = next((p for p in candidates if _complete(p)), None)
    if newest is None:
        warnings.warn(f"{problem}, and no complete checkpoint is left in {directory}; "
                      f"resuming from the first epoch", stacklevel=2)
    else:
        warnings.warn(f"{problem}; resuming from {newest}, the newest complete checkpoint", stacklevel=2)
    return newest


def link_last(checkpoint_dir: Path, target: Path) -> None:
    """Atomically point ``checkpoint_dir/last`` at ``target`` (a sibling directory)."""
    temporary = checkpoint_dir / f".last.tmp-{uuid.uuid4().hex[:8]}"
    os.symlink(target.name, temporary)
    os.replace(temporary, checkpoint_dir / "last")
    _fsync(checkpoint_dir)


class SafeCheckpointIO(CheckpointIO):
    """Lightning plugin: save and load Trainer checkpoints in the format above."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        save_checkpoint(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        return load_checkpoint(path)

    def remove_checkpoint(self, path):
        shutil.rmtree(path, ignore_errors=True)
