"""``init`` files are read without running code and loaded strictly (run directories and
export folders: tests/test_export.py)."""

import pytest
import torch
from safetensors.torch import save_file

from selfsup import backbones
from selfsup.config import ConfigError
from selfsup.train.init import load_init, read_init


def test_safetensors_and_weights_only_torch_files_load_into_the_library_model(tmp_path):
    torch.manual_seed(0)
    source = backbones.create("resnet18", image_size=16)
    state = {k: v.contiguous() for k, v in backbones.weights_module(source).state_dict().items()}
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.save({"state_dict": state}, tmp_path / "w.pth")
    for name in ("w.safetensors", "w.pth"):
        target = backbones.create("resnet18", image_size=16)
        load_init(target, str(tmp_path / name), "resnet18")
        loaded = target.net.state_dict()
        assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_checkpoint_weights_load_into_the_whole_backbone(tmp_path):
    smallcnn = backbones.create("smallcnn")
    save_file({f"method.backbone.{k}": v for k, v in smallcnn.state_dict().items()} | {"method.head.w": torch.ones(1)},
              str(tmp_path / "weights.safetensors"))
    state, whole = read_init(str(tmp_path / "weights.safetensors"))
    assert whole and state.keys() == smallcnn.state_dict().keys()
    state, whole = read_init(str(tmp_path))  # a checkpoint directory
    assert whole and state.keys() == smallcnn.state_dict().keys()


class Payload:  # unpickling it would run this module's code: weights_only refuses it
    pass


def test_pickled_code_and_other_files_are_refused_in_one_line(tmp_path):
    torch.save({"weights": Payload()}, tmp_path / "code.pth")
    with pytest.raises(ConfigError, match=r"init='.*code.pth': cannot be read as a weights-only torch file"):
        read_init(str(tmp_path / "code.pth"))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ConfigError, match="expected a .safetensors or .pth file, a folder with model.safetensors"):
        read_init(str(tmp_path / "notes.txt"))


def test_a_tensor_of_another_shape_is_named(tmp_path):
    state = {k: v.contiguous() for k, v in backbones.create("smallcnn").state_dict().items()}
    state["features.0.weight"] = torch.zeros(1)
    save_file(state, str(tmp_path / "w.safetensors"))
    with pytest.raises(ConfigError, match=r"features.0.weight: shape \(1,\), expected \(32, 3, 3, 3\)"):
        load_init(backbones.create("smallcnn"), str(tmp_path / "w.safetensors"), "smallcnn")
