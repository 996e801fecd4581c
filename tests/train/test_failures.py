"""Nothing lost: divergence, a kill during a checkpoint write, a full disk."""

import errno
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from selfsup.config import ConfigError, PretrainConfig
from selfsup.methods.simclr import SimCLR
from selfsup.tasks import pretrain
from selfsup.train import checkpoint as checkpoint_module
from selfsup.train.checkpoint import CheckpointError, load_checkpoint, load_weights, save_checkpoint
from selfsup.train.module import DivergenceError

FAST = dict(data="digits", method="simclr", image_size=16, batch_size=256, report=False, monitor_samples=256)  # 5 steps an epoch


def test_nan_loss_stops_at_its_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    original = SimCLR.training_step
    calls = {"n": 0}

    def poisoned(self, views):
        out = original(self, views)
        calls["n"] += 1
        return {**out, "loss": out["loss"] * float("nan")} if calls["n"] == 8 else out

    monkeypatch.setattr(SimCLR, "training_step", poisoned)
    out = tmp_path / "run"
    with pytest.raises(DivergenceError) as error:
        pretrain(PretrainConfig(out=str(out), epochs=3, **FAST))
    message = str(error.value)
    assert "at step 7" in message and "epoch 1" in message
    assert f"last good checkpoint: {out / 'checkpoints' / 'epoch-0001'}" in message
    assert os.readlink(out / "checkpoints" / "last") == "epoch-0001"
    assert load_checkpoint(out / "checkpoints" / "last")["global_step"] == 5
    assert not (out / "summary.json").exists()


def test_a_nan_weight_the_loss_does_not_show_is_never_checkpointed(tmp_path, monkeypatch):
    """CPU bf16 once left NaN in conv taps that meet only padding: the loss stayed finite."""
    original = SimCLR.after_optimizer_step
    calls = {"n": 0}

    def poisoned(self, progress):
        original(self, progress)
        calls["n"] += 1
        if calls["n"] == 10:  # the last step of epoch 2: no loss reads the weight before the epoch ends
            with torch.no_grad():
                next(self.projector.parameters()).view(-1)[0] = float("nan")

    monkeypatch.setattr(SimCLR, "after_optimizer_step", poisoned)
    out = tmp_path / "run"
    with pytest.raises(DivergenceError) as error:
        pretrain(PretrainConfig(out=str(out), epochs=3, **FAST))
    message = str(error.value)
    assert "weight tensor(s) hold NaN or inf after epoch 2, first " in message
    assert f"last good checkpoint: {out / 'checkpoints' / 'epoch-0001'}" in message
    assert os.readlink(out / "checkpoints" / "last") == "epoch-0001"
    assert not (out / "checkpoints" / "epoch-0002").exists() and not (out / "summary.json").exists()


def test_kill_during_checkpoint_write_leaves_last_loadable(tmp_path):
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    good = {"state_dict": {"w": torch.ones(3)}, "global_step": 1}
    save_checkpoint(good, directory / "epoch-0001")
    checkpoint_module.link_last(directory, directory / "epoch-0001")
    # a process that dies (SIGKILL) half-way through writing the next checkpoint
    script = textwrap.dedent(f"""
        import os, signal, torch
        from selfsup.train import checkpoint
        real = checkpoint.save_file
        def dying(tensors, path):
            real(tensors, path)
            if str(path).endswith("state.safetensors"):
                os.kill(os.getpid(), signal.SIGKILL)
        checkpoint.save_file = dying
        checkpoint.save_checkpoint({{"state_dict": {{"w": torch.zeros(3)}}, "global_step": 2}},
                                   {str(directory / 'epoch-0002')!r})
    """)
    result = subprocess.run([sys.executable, "-c", script])
    assert result.returncode == -9
    assert not (directory / "epoch-0002").exists()  # never renamed into place
    assert any(p.name.startswith(".epoch-0002.tmp-") for p in directory.iterdir())
    assert torch.equal(load_weights(directory / "last")["w"], torch.ones(3))
    checkpoint_module.remove_stale_temporaries(directory)
    assert sorted(p.name for p in directory.iterdir()) == ["epoch-0001", "last"]


def test_disk_full_during_save_is_a_clear_error_and_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    save_checkpoint({"state_dict": {"w": torch.ones(2)}}, tmp_path / "epoch-0001")

    def full(tensors, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module, "save_file", full)
    with pytest.raises(CheckpointError, match="cannot write checkpoint .*epoch-0002: No space left on device"):
        save_checkpoint({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "epoch-0002")
    assert [p.name for p in tmp_path.iterdir()] == ["epoch-0001"]


def test_disk_full_during_training_names_the_last_good_checkpoint(tmp_path, monkeypatch):
    real = checkpoint_module.save_file

    def fills_up(tensors, path):
        if "epoch-0002" in str(path) or ".epoch-0002" in str(path.parent):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(tensors, path)

    monkeypatch.setattr(checkpoint_module, "save_file", fills_up)
    out = tmp_path / "run"
    with pytest.raises(CheckpointError) as error:
        pretrain(PretrainConfig(out=str(out), epochs=3, **FAST))
    assert "No space left on device" in str(error.value)
    assert str(out / "checkpoints" / "epoch-0001") in str(error.value)
    assert load_checkpoint(out / "checkpoints" / "last")["global_step"] == 5


def test_too_little_free_space_fails_before_training(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(ConfigError, match="MiB free, checkpoints need about"):
        pretrain(PretrainConfig(out=str(tmp_path / "run"), epochs=1, **FAST))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_unwritable_run_directory_fails_before_any_work(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        with pytest.raises(ConfigError, match="cannot write in"):
            pretrain(PretrainConfig(out=str(locked / "run"), epochs=1, **FAST))
    finally:
        locked.chmod(0o700)


def test_run_directory_under_a_file_fails_before_any_work(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="cannot write in"):
        pretrain(PretrainConfig(out=str(tmp_path / "file" / "run"), epochs=1, **FAST))
