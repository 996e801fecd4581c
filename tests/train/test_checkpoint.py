import os
import pickle

import pytest
import torch

from selfsup.train.checkpoint import CheckpointError, link_last, load_checkpoint, load_weights, save_checkpoint


def sample_checkpoint():
    return {
        "epoch": 3, "global_step": 12, "pytorch-lightning_version": "2.x",
        "state_dict": {"method.backbone.weight": torch.randn(4, 3), "method.bn.num_batches_tracked": torch.tensor(5)},
        "optimizer_states": [{"state": {0: {"momentum_buffer": torch.randn(4, 3)}},
                              "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0, 1]}]}],
        "loops": {"fit_loop": {"epoch_progress": {"total": {"ready": 3}}}},
        "nothing": None, "inf": float("inf"),
    }


def test_round_trip_keeps_types_and_values(tmp_path):
    original = sample_checkpoint()
    save_checkpoint(original, tmp_path / "epoch-0003")
    loaded = load_checkpoint(tmp_path / "epoch-0003")
    assert set(loaded) == set(original)
    for key, value in original["state_dict"].items():
        assert torch.equal(loaded["state_dict"][key], value) and loaded["state_dict"][key].dtype == value.dtype
    state = loaded["optimizer_states"][0]
    assert list(state["state"]) == [0]  # integer keys stay integers
    assert torch.equal(state["state"][0]["momentum_buffer"], original["optimizer_states"][0]["state"][0]["momentum_buffer"])
    assert state["param_groups"][0]["betas"] == (0.9, 0.999)
    assert loaded["loops"] == original["loops"] and loaded["inf"] == float("inf") and loaded["nothing"] is None
    assert set(load_weights(tmp_path / "epoch-0003")) == set(original["state_dict"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_failed_write_leaves_nothing_and_keeps_the_old_checkpoint(tmp_path):
    save_checkpoint(sample_checkpoint(), tmp_path / "ckpt")
    before = load_weights(tmp_path / "ckpt")["method.backbone.weight"]
    bad = sample_checkpoint()
    bad["callbacks"] = {"thing": object()}  # cannot be stored
    with pytest.raises(CheckpointError, match="thing"):
        save_checkpoint(bad, tmp_path / "ckpt")
    assert torch.equal(load_weights(tmp_path / "ckpt")["method.backbone.weight"], before)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_last_link_moves_atomically(tmp_path):
    for name in ("epoch-0001", "epoch-0002"):
        save_checkpoint(sample_checkpoint(), tmp_path / name)
        link_last(tmp_path, tmp_path / name)
        assert os.readlink(tmp_path / "last") == name
    assert load_checkpoint(tmp_path / "last")["global_step"] == 12


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/selfsup-pwned",))


def test_pickle_checkpoint_is_refused_and_never_run(tmp_path):
    target = tmp_path / "evil"
    target.mkdir()
    for name in ("weights.safetensors", "state.safetensors"):
        (target / name).write_bytes(pickle.dumps(Exploit()))
    (target / "state.json").write_text('{"format": "selfsup-checkpoint-1", "state": {"__dict__": []}}')
    if os.path.exists("/tmp/selfsup-pwned"):
        os.remove("/tmp/selfsup-pwned")
    with pytest.raises(CheckpointError, match="cannot"):
        load_checkpoint(target)
    with pytest.raises(CheckpointError):
        load_weights(target)
    assert not os.path.exists("/tmp/selfsup-pwned")
    torch.save({"x": Exploit()}, tmp_path / "model.ckpt")
    with pytest.raises(CheckpointError, match="not a"):
        load_checkpoint(tmp_path / "model.ckpt")
