"""TS2Vec's contexts (overlapping crops, timestamp masks), its encoder as the reference's
(yuezhihan/ts2vec models/encoder.py, dilated_conv.py), its training step and the averaged
(SWA) encoder it embeds with."""

import io

import pytest
import torch
import torch.nn.functional as F

from selfsup import backbones, methods
from selfsup.methods.optim import parameter_groups
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
    model.eval()
    assert torch.equal(model.backbone(x), model.backbone.sequence(x).amax(dim=-1))


def test_ts2vec_needs_the_dilated_cnn():
    with pytest.raises(ValueError, match="ts2vec needs the dilated_cnn backbone"):
        methods.create("ts2vec", backbones.create("resnet1d_small", input_shape=[1, 24]))


def reference_encoder(backbone, x):
    """TSEncoder.forward of the reference (eval mode, no mask), on our weights: input_fc,
    then for every ConvBlock residual + conv2(gelu(conv1(gelu(x)))) with SamePadConv's
    padding, the 1x1 projector where there is one."""
    h = backbone.input(x.transpose(1, 2)).transpose(1, 2)
    for i, block in enumerate(backbone.blocks):
        residual = h if block.projector is None else block.projector(h)
        d = 2 ** i
        h = F.conv1d(F.gelu(h), block.conv1.weight, block.conv1.bias, padding=(2 * d + 1) // 2, dilation=d)
        h = F.conv1d(F.gelu(h), block.conv2.weight, block.conv2.bias, padding=(2 * d + 1) // 2, dilation=d)
        h = h + residual
    return h


def test_dilated_cnn_is_the_reference_encoder():
    torch.manual_seed(0)
    backbone = backbones.create("dilated_cnn", input_shape=[2, 30])
    # the reference's sizes: hidden 64, depth 10 (+ the last block to 320), dilation 2^i
    assert backbone.dim == 320 and len(backbone.blocks) == 11 and isinstance(backbone.input, torch.nn.Linear)
    assert [b.conv1.dilation[0] for b in backbone.blocks] == [2 ** i for i in range(11)]
    assert [b.projector is not None for b in backbone.blocks] == [False] * 10 + [True]  # 64 -> 320
    assert not any(isinstance(m, (torch.nn.BatchNorm1d, torch.nn.LayerNorm)) for m in backbone.modules())
    x = torch.randn(3, 2, 30)
    backbone.eval()
    assert torch.allclose(backbone.sequence(x), reference_encoder(backbone, x), atol=1e-5)
    # dropout 0.1 on the output, while training only
    backbone.train()
    out = backbone.sequence(x)
    assert 0.05 < (out == 0).float().mean() < 0.15 and not torch.equal(out, backbone.sequence(x))
    # the widths are options; the last block projects even where the widths agree, as the reference's
    small = backbones.create("dilated_cnn", input_shape=[2, 30], options=dict(hidden_dims=8, output_dims=8, depth=3))
    assert small.dim == 8 and len(small.blocks) == 4 and small.blocks[-1].projector is not None
    assert small.blocks[0].conv1.in_channels == 8


def make_ts2vec(**options):
    torch.manual_seed(0)
    backbone = backbones.create("dilated_cnn", input_shape=[1, 24], options=dict(hidden_dims=8, output_dims=16,
                                                                               depth=3))
    return methods.create("ts2vec", backbone, seed=1, **options)


def test_embed_uses_the_average_of_the_weights_over_training():
    model = make_ts2vec()
    optimizer = torch.optim.AdamW(model.parameters(), 1e-2)
    history = [[p.detach().clone() for p in model.backbone.parameters()]]
    x = torch.randn(8, 1, 24).cumsum(dim=2)
    for step in range(3):
        loss = model.training_step([x])["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.after_optimizer_step(step / 3)
        history.append([p.detach().clone() for p in model.backbone.parameters()])
    # AveragedModel's equal average of the initial weights and those after every step
    for averaged, *versions in zip(model.averaged.module.parameters(), *history):
        assert torch.allclose(averaged, torch.stack(versions).mean(dim=0), atol=1e-6)
    assert int(model.averaged.n_averaged) == 4
    assert not any(p.requires_grad for p in model.averaged.parameters())
    averaged = {id(q) for q in model.averaged.parameters()}
    assert not any(id(p) in averaged for group in parameter_groups(model, 0.01, lars=False) for p in group["params"])
    model.eval()
    assert torch.equal(model.embed(x), model.averaged.module(x)) and torch.equal(model(x), model.embed(x))
    assert not torch.allclose(model.embed(x), model.backbone(x))
    # a checkpoint round trip keeps the average and its count
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    restored = make_ts2vec()
    restored.load_state_dict(torch.load(io.BytesIO(buffer.getvalue())))
    restored.eval()
    assert torch.equal(restored.embed(x), model.embed(x)) and int(restored.averaged.n_averaged) == 4
    # off: the encoder itself
    plain = make_ts2vec(swa=False).eval()
    assert plain.averaged is None and torch.equal(plain.embed(x), plain.backbone(x))


def test_the_lr_is_the_references_constant_from_the_first_step(tmp_path):
    """The reference (ts2vec.py ``fit``) steps AdamW at lr 1e-3 from the first step to the last:
    no warm-up, no decay. At the paper's batch 8, ``--lr 0.032`` (per 256) is that 1e-3."""
    import json

    import numpy as np

    from selfsup.config import PretrainConfig
    from selfsup.tasks import pretrain

    series = np.random.default_rng(0).normal(size=(32, 1, 20)).cumsum(axis=2)
    np.save(tmp_path / "s.npy", series)
    out = tmp_path / "run"
    pretrain(PretrainConfig(data=str(tmp_path / "s.npy"), method="ts2vec", epochs=3, batch_size=8, lr=0.032,
                            holdout=0.0, report=False, log_every_n_steps=1, out=str(out),
                            backbone_options={"hidden_dims": 8, "output_dims": 16, "depth": 2}))
    lrs = [r["lr"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "lr" in r]
    assert len(lrs) == 12 and all(abs(lr - 1e-3) < 1e-9 for lr in lrs)
    assert methods.METHODS["ts2vec"].warmup_fraction == 0 and methods.METHODS["simclr"].lr_schedule == "cosine"
