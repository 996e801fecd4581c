import pytest
import torch

from selfsup import augment, backbones, methods
from selfsup.backbones.vit import ViT


def make_mae(image_size=16, **options):
    torch.manual_seed(0)
    vit = ViT(width=32, depth=2, heads=2, image_size=image_size)
    return methods.create("mae", vit, decoder_dim=16, decoder_depth=1, decoder_heads=2, **options)


def test_training_step_on_recipe_views_reaches_backbone():
    torch.manual_seed(0)
    mae = methods.create("mae", backbones.create("vit_tiny", image_size=16))
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    views = augment.create(mae.recipe, 16)(images, torch.Generator().manual_seed(0), [0.5] * 3, [0.25] * 3)
    assert len(views) == 1 and views[0].shape == (4, 3, 16, 16)
    loss = mae.training_step(views)["loss"]
    assert torch.isfinite(loss)
    loss.backward()
    assert mae.backbone.patch_embed.proj.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in mae.decoder.parameters())


def test_needs_a_vit():
    with pytest.raises(ValueError, match="MAE needs a ViT backbone"):
        methods.create("mae", backbones.create("smallcnn"))


def test_masks_keep_a_quarter_differ_per_sample_and_per_step():
    mae = make_mae(image_size=32)  # 64 patches
    first = mae.sample_visible(8)
    assert first.shape == (8, 16)
    assert len({tuple(sorted(row.tolist())) for row in first}) == 8
    assert int(mae.mask_step) == 1 and not torch.equal(mae.sample_visible(8), first)
    again = make_mae(image_size=32)  # same seed of construction: same masks
    assert torch.equal(again.sample_visible(8), first)
    assert "mask_step" in mae.state_dict() and "mask_seed" in mae.state_dict()


def test_encoder_sees_only_visible_patches():
    mae = make_mae().eval()
    images = torch.randn(2, 3, 16, 16)
    visible = torch.tensor([[0, 5, 10, 15], [1, 2, 3, 4]])
    prediction, mask = mae.predict(images, visible)
    assert prediction.shape == (2, 16, 48)
    assert mask.sum(1).tolist() == [12, 12] and mask.gather(1, visible).sum() == 0
    changed = images.clone()
    changed[:, :, 12:, 4:8] = 9.0  # patch 13, masked in both samples
    assert torch.allclose(mae.predict(changed, visible)[0], prediction, atol=1e-5)
    changed[0, :, :4, :4] = 9.0  # patch 0, visible in sample 0
    assert not torch.allclose(mae.predict(changed, visible)[0][0], prediction[0])


def test_loss_is_normalised_pixel_mse_on_masked_patches():
    mae = make_mae().eval()
    images = torch.randn(2, 3, 16, 16)
    visible = torch.tensor([[0, 5, 10, 15], [1, 2, 3, 4]])
    prediction, mask = mae.predict(images, visible)
    total, count = 0.0, 0
    for s in range(2):
        for i in range(16):
            if i in visible[s].tolist():
                continue
            r, c = divmod(i, 4)
            patch = images[s, :, 4 * r:4 * r + 4, 4 * c:4 * c + 4].permute(1, 2, 0).reshape(-1)
            target = (patch - patch.mean()) / torch.sqrt(patch.var() + 1e-6)
            total += ((prediction[s, i] - target) ** 2).mean()
            count += 1
    assert count == 24
    assert torch.allclose(mae.reconstruction_loss(images, visible), total / count, atol=1e-5)


def test_optimizer_defaults_follow_the_paper():
    from selfsup.methods import MAE
    assert (MAE.optimizer.name, MAE.optimizer.lr, MAE.optimizer.weight_decay) == ("adamw", 1.5e-4, 0.05)
    assert MAE.default_backbone == "vit_mini"  # ours: small images on a CPU
