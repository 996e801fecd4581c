"""What the trainer relies on from every registered method, checked for each of them on a
tiny backbone of its modality and views from its own recipe, so a new method is covered as
soon as it registers. The per-method files check what is particular to a method: its loss
against the paper's formula, its schedules, targets and queues."""

import pytest
import torch

from selfsup import backbones, methods, modalities
from selfsup.methods import METHODS, Method, OptimizerDefaults

IMAGE_SIZE = 16
INPUT_SHAPE = {"image": [3, IMAGE_SIZE, IMAGE_SIZE], "table": [6], "timeseries": [2, 32]}


def modality_of(cls) -> str:
    """Image methods may name no default backbone; table and series ones always name one."""
    return backbones.MODALITY.get(cls.default_backbone, "image")


def raw_samples(modality: str, n: int) -> torch.Tensor:
    """A batch as a source yields it: uint8 pixels for images, floats otherwise."""
    generator = torch.Generator().manual_seed(0)
    if modality == "image":
        return torch.randint(0, 256, (n, *INPUT_SHAPE["image"]), dtype=torch.uint8, generator=generator)
    return torch.randn(n, *INPUT_SHAPE[modality], generator=generator)


# steps with no second view through the same backbone: MoCo v2's key view meets only the
# key encoder; RotNet, MAE, I-JEPA and masked reconstruction see one view
WITHOUT_PAIRS = {"moco", "rotnet", "mae", "ijepa", "masked_series"}


@pytest.mark.parametrize("name", list(METHODS))
def test_method_conforms(name):
    cls = METHODS[name]
    assert cls.name == name and getattr(methods, cls.__name__) is cls  # from selfsup.methods import SimCLR
    assert cls.paper and cls.year >= 2018 and cls.recipe and cls.needs
    assert isinstance(cls.optimizer, OptimizerDefaults) and cls.optimizer is not Method.optimizer

    modality = modality_of(cls)
    torch.manual_seed(0)
    backbone = backbones.create(cls.default_backbone or "smallcnn", image_size=IMAGE_SIZE,
                                input_shape=INPUT_SHAPE[modality])
    method = methods.create(name, backbone)
    batch_size = max(8, method.min_batch_size)
    channels = INPUT_SHAPE[modality][0]
    mean, std = ([0.5] * 3, [0.25] * 3) if modality == "image" else ([0.0] * channels, [1.0] * channels)
    recipe = modalities.get(modality).views(cls.recipe, IMAGE_SIZE)
    views = recipe(raw_samples(modality, batch_size), torch.Generator().manual_seed(0), mean, std)

    labels = {"labels": torch.arange(batch_size) % 3} if cls.needs_labels else {}
    out = method.training_step(views, **labels)
    loss, logs = out["loss"], out["logs"]
    assert loss.shape == () and torch.isfinite(loss) and isinstance(logs, dict)
    # the step's own first-view embeddings (what the monitors read), and the second view's
    # where it has one through the same backbone
    for key in ("embeddings", "paired") if "paired" in out else ("embeddings",):
        assert out[key].shape == (batch_size, backbone.dim) and not out[key].requires_grad, key
    assert ("paired" in out) == (name not in WITHOUT_PAIRS)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.backbone.parameters())
    method.after_optimizer_step(0.0)

    embeddings = method.eval().embed(views[0])
    assert embeddings.shape == (batch_size, backbone.dim) and not embeddings.requires_grad
    assert torch.equal(method(views[0]), embeddings)  # method(x) is method.embed(x): what downstream calls


def test_unknown_method_names_the_available_ones():
    assert {"simclr", "byol"} <= set(METHODS)
    with pytest.raises(ValueError, match="unknown method 'nope'; available: simclr, "):
        methods.create("nope", backbones.create("smallcnn"))
