"""TS2Vec's contexts (overlapping crops, timestamp masks) and its training step."""

import pytest
import torch

from selfsup import backbones, methods
from selfsup.methods.ts2vec import context_crops, take_windows


def test_context_crops_share_the_overlap_and_stay_inside_the_series():
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        offsets, a1, a2, b1, b2 = context_crops(16, 40, generator)
        assert 0 <= a1 <= a2 < b1 <= b2 <= 40 and b1 - a2 >= 2
        assert (offsets + a1 >= 0).all() and (offsets + b2 <= 40).all()


def test_windows_are_the_series_slices():
    x = torch.arange(2 * 3 * 10, dtype=torch.float32).reshape(2, 3, 10)
    windows = take_windows(x, torch.tensor([1, 4]), 5)
    assert torch.equal(windows[0], x[0, :, 1:6]) and torch.equal(windows[1], x[1, :, 4:9])


def test_timestamp_masking_zeroes_the_projected_input_of_hidden_steps():
    backbone = backbones.create("dilated_cnn", input_shape=[2, 16]).eval()
    x = torch.randn(3, 2, 16)
    everything = torch.ones(3, 16, dtype=torch.bool)
    # every step hidden: the output no longer depends on the input
    assert torch.allclose(backbone.sequence(x, everything), backbone.sequence(torch.randn(3, 2, 16), everything))
    assert torch.equal(backbone.sequence(x, torch.zeros(3, 16, dtype=torch.bool)), backbone.sequence(x))


def test_training_step_learns_replays_and_pools_by_maximum():
    torch.manual_seed(0)
    model = methods.create("ts2vec", backbones.create("dilated_cnn", input_shape=[1, 24]), seed=3)
    x = torch.randn(8, 1, 24).cumsum(dim=2)
    twin = methods.create("ts2vec", backbones.create("dilated_cnn", input_shape=[1, 24]), seed=3)
    twin.load_state_dict(model.state_dict())
    out = model.training_step([x])
    loss, logs = out["loss"], out["logs"]
    loss.backward()
    assert torch.isfinite(loss) and 2 <= logs["overlap"] <= 24 and int(model.crop_step) == 1
    assert all(p.grad is not None for p in model.backbone.parameters())
    assert torch.equal(twin.training_step([x])["loss"], loss.detach())  # the same crops and masks from (seed, step)
    assert torch.equal(model.backbone(x), model.backbone.sequence(x).amax(dim=-1))


def test_ts2vec_needs_the_dilated_cnn():
    with pytest.raises(ValueError, match="ts2vec needs the dilated_cnn backbone"):
        methods.create("ts2vec", backbones.create("resnet1d_small", input_shape=[1, 24]))
