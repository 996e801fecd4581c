import torch

from selfsup.losses import masked_patch_mse, patchify


def loop_loss(prediction, images, mask, p, normalize=True):
    """The normalised-pixel MSE one masked patch at a time, straight from the images."""
    b, c, h, w = images.shape
    total, count = 0.0, 0
    for s in range(b):
        for i in range(mask.shape[1]):
            if not mask[s, i]:
                continue
            r, col = divmod(i, w // p)
            patch = images[s, :, r * p:(r + 1) * p, col * p:(col + 1) * p].permute(1, 2, 0).reshape(-1)
            if normalize:
                patch = (patch - patch.mean()) / torch.sqrt(patch.var() + 1e-6)
            total += ((prediction[s, i] - patch) ** 2).mean()
            count += 1
    return total / count


def example(b=3, size=8, p=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(b, 3, size, size, generator=g)
    n = (size // p) ** 2
    prediction = torch.randn(b, n, p * p * 3, generator=g)
    mask = torch.rand(b, n, generator=g) < 0.75
    mask[:, 0] = True
    return images, prediction, mask


def test_patchify_order_and_layout():
    images = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    patches = patchify(images, 2)
    assert patches.shape == (2, 6, 12)
    # patch 4 is grid row 1, column 1; values row by row, channels last
    expected = images[1, :, 2:4, 2:4].permute(1, 2, 0).reshape(-1)
    assert torch.equal(patches[1, 4], expected)


def test_matches_loop_over_masked_patches():
    images, prediction, mask = example()
    loss = masked_patch_mse(prediction, patchify(images, 4), mask)
    assert torch.allclose(loss, loop_loss(prediction, images, mask, 4), atol=1e-5)
    plain = masked_patch_mse(prediction, patchify(images, 4), mask, normalize_target=False)
    assert torch.allclose(plain, loop_loss(prediction, images, mask, 4, normalize=False), atol=1e-5)


def test_visible_patches_do_not_count():
    images, prediction, mask = example()
    patches = patchify(images, 4)
    loss = masked_patch_mse(prediction, patches, mask)
    other_target = torch.where(mask[..., None], patches, torch.randn_like(patches) * 10)
    other_prediction = torch.where(mask[..., None], prediction, torch.randn_like(prediction))
    assert torch.allclose(masked_patch_mse(prediction, other_target, mask), loss)
    assert torch.allclose(masked_patch_mse(other_prediction, patches, mask), loss)
    prediction.requires_grad_(True)
    masked_patch_mse(prediction, patches, mask).backward()
    assert prediction.grad[~mask].abs().max() == 0 and prediction.grad[mask].abs().max() > 0


def test_normalised_target_ignores_patch_brightness_and_contrast():
    images, prediction, mask = example()
    patches = patchify(images, 4)
    scale = torch.rand(*patches.shape[:2], 1) * 3 + 0.5
    shift = torch.randn(*patches.shape[:2], 1) * 5
    assert torch.allclose(masked_patch_mse(prediction, patches * scale + shift, mask),
                          masked_patch_mse(prediction, patches, mask), atol=1e-4)


def test_perfect_prediction_and_target_gets_no_gradient():
    images, _, mask = example()
    patches = patchify(images, 4).requires_grad_(True)
    target = (patches - patches.mean(-1, keepdim=True)) / (patches.var(-1, keepdim=True) + 1e-6).sqrt()
    assert masked_patch_mse(target.detach(), patches, mask).item() < 1e-10
    prediction = torch.zeros_like(target, requires_grad=True)
    masked_patch_mse(prediction, patches, mask).backward()
    assert patches.grad is None
