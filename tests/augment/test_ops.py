import torch
import torchvision.transforms.v2.functional as TF

from selfsup import augment
from selfsup.augment import ops


def images(n=8, size=16, seed=0):
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


def test_full_crop_without_flip_is_identity(generator):
    x = images()
    out = ops.random_resized_crop(x, 16, generator, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0)
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert torch.allclose(out, x.float() / 255, atol=1e-5)


def test_flip_mirrors(generator):
    x = images()
    out = ops.random_resized_crop(x, 16, generator, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=1.0)
    assert torch.allclose(out, x.flip(-1).float() / 255, atol=1e-5)


def test_batched_crop_matches_per_sample_reference():
    x = images(4, 32)
    cx, cy = torch.tensor([0.5, 0.25, 0.75, 0.5]), torch.tensor([0.5, 0.25, 0.5, 0.75])
    w, h = torch.tensor([0.5, 0.5, 0.5, 1.0]), torch.tensor([0.5, 0.5, 1.0, 0.5])
    out = ops.crop_boxes(x, 16, cx, cy, w, h)
    for i in range(4):  # the box in pixels, resized with torchvision (bilinear, no antialias)
        left, top = int((cx[i] - w[i] / 2) * 32), int((cy[i] - h[i] / 2) * 32)
        reference = TF.resized_crop(x[i].float() / 255, top, left, int(h[i] * 32), int(w[i] * 32),
                                    [16, 16], antialias=False)
        assert (out[i] - reference).abs().mean() < 0.02


def test_crop_boxes_stay_inside_and_vary(generator):
    x = images(64, 32)
    out = ops.random_resized_crop(x, 24, generator)
    assert out.shape == (64, 3, 24, 24) and out.min() >= 0 and out.max() <= 1
    flat = out.reshape(64, -1)
    assert len({tuple(row[:20].tolist()) for row in flat}) == 64  # different parameters per sample


def test_color_matches_torchvision_for_each_adjustment():
    x = images(1, 8).float() / 255
    one = torch.ones(1)
    adjust = {"brightness": TF.adjust_brightness, "contrast": TF.adjust_contrast,
              "saturation": TF.adjust_saturation}
    for kind, reference in adjust.items():
        for factor in (0.5, 1.3):
            b, k, s = [factor * one if kind == name else one for name in adjust]
            assert torch.allclose(ops.apply_color(x.clone(), *ops.color_transform(b, k, s)), reference(x, factor),
                                  atol=1e-3), kind
    assert torch.allclose(ops.grayscale(x, torch.ones(1, dtype=torch.bool)),
                          TF.rgb_to_grayscale(x, num_output_channels=3), atol=1e-3)


def test_hue_is_torchvisions_hsv_shift_per_sample():
    x = images(6, 16).float() / 255
    x[0, :, :4] = 0.5  # grey pixels, whose hue is undefined, stay grey
    shifts = torch.tensor([0.1, -0.1, 0.5, -0.5, 0.03, 0.0])
    out = ops.shift_hue(x, shifts)
    for i, shift in enumerate(shifts.tolist()):
        assert torch.allclose(out[i], TF.adjust_hue(x[i], shift), atol=1e-5), shift
    assert torch.equal(out[5], x[5]) and torch.allclose(out[0, :, :4], x[0, :, :4])
    assert torch.allclose(out.amax(dim=1), x.amax(dim=1), atol=1e-6)  # HSV value kept


def test_color_jitter_is_torchvisions_jitter_then_grayscale():
    """All four jitters: torchvision in the order brightness, contrast, saturation, hue
    (clamping after each, where we clamp once before the hue), then grayscale; mid-range
    pixels, so that where the clamps fall makes no difference."""
    x = images(32, 16).float() / 255 * 0.4 + 0.3
    draws = ops.color_factors(torch.Generator().manual_seed(3), 32, 1.0, 0.4, 0.4, 0.4, 0.1, 0.25)
    out = ops.color_jitter(x.clone(), torch.Generator().manual_seed(3), 1.0, 0.4, 0.4, 0.4, 0.1, 0.25)
    b, k, s, h, gray = draws
    for i in range(32):
        y = TF.adjust_hue(TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(
            x[i], float(b[i])), float(k[i])), float(s[i])), float(h[i]))
        if gray[i]:
            y = TF.rgb_to_grayscale(y, num_output_channels=3)
        assert torch.allclose(out[i], y, atol=5e-4), i  # torchvision's luma weighs red 0.2989
    assert 0 < int(gray.sum()) < 32 and h.abs().min() > 0


def test_no_jitter_is_identity():
    x = images(5, 8).float() / 255
    out = ops.color_jitter(x.clone(), torch.Generator().manual_seed(0), jitter_p=0.0, brightness=0.8, contrast=0.8,
                           saturation=0.8, hue=0.2, grayscale_p=0.0)
    assert torch.allclose(out, x, atol=1e-6)


def test_jitter_factor_ranges_respected():
    b, k, s, h, gray = ops.color_factors(torch.Generator().manual_seed(0), 1000, jitter_p=1.0, brightness=0.4,
                                         contrast=0.0, saturation=0.0, hue=0.1, grayscale_p=0.0)
    assert b.min() >= 0.6 - 1e-6 and b.max() <= 1.4 + 1e-6 and b.min() < 0.65 and b.max() > 1.35
    assert h.min() >= -0.1 and h.max() <= 0.1 and h.min() < -0.09 and h.max() > 0.09
    assert torch.equal(k, torch.ones(1000)) and torch.equal(s, torch.ones(1000)) and not gray.any()


def test_grayscale_makes_channels_equal():
    out = ops.color_jitter(images(4).float() / 255, torch.Generator().manual_seed(0), jitter_p=0.0, brightness=0,
                           contrast=0, saturation=0, hue=0, grayscale_p=1.0)
    assert torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 1], out[:, 2])


def test_blur_kernel_normalised_and_p0_identity(generator):
    x = images(4, 32).float() / 255
    assert torch.equal(ops.gaussian_blur(x, generator, p=0.0), x)
    constant = torch.full((4, 3, 32, 32), 0.3)
    assert torch.allclose(ops.gaussian_blur(constant, generator, p=1.0), constant, atol=1e-6)
    blurred = ops.gaussian_blur(x, generator, p=1.0, sigma=(2.0, 2.0))
    assert blurred.std() < x.std()  # smoothing lowers the pixel variance
    assert torch.allclose(blurred.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=0.02)


def test_solarize(generator):
    x = torch.tensor([0.2, 0.5, 0.9]).reshape(1, 1, 1, 3).expand(2, 3, 1, 3)
    out = ops.solarize(x, generator, p=1.0)
    assert torch.allclose(out[0, 0, 0], torch.tensor([0.2, 0.5, 0.1]))
    assert torch.equal(ops.solarize(x, generator, p=0.0), x)


def test_recipe_views_reproducible_and_different():
    x = images(16, 32)
    recipe = augment.create("byol", 32)
    run = lambda seed: recipe(x, torch.Generator().manual_seed(seed), [0.5] * 3, [0.25] * 3)
    a, b, c = run(0), run(0), run(1)
    assert len(a) == 2 and a[0].shape == (16, 3, 32, 32) and a[0].dtype == torch.float32
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[0], a[1])
    assert x.dtype == torch.uint8  # the input is not modified


def test_runs_on_the_batch_device(generator):
    x = images(4, 16)
    out = augment.create("simclr", 16)(x, generator, [0.5] * 3, [0.25] * 3)
    assert out[0].device == x.device


def test_slices_of_a_batch_get_the_views_of_the_whole_batch():
    x = images(8, 32)
    recipe = augment.create("simclr", 32, blur=True)
    whole = recipe(x, torch.Generator().manual_seed(5), [0.5] * 3, [0.25] * 3)
    for start in (0, 4):
        part = recipe(x[start:start + 4], ops.SliceDraws(torch.Generator().manual_seed(5), 8, start),
                      [0.5] * 3, [0.25] * 3)
        for v_whole, v_part in zip(whole, part):
            assert torch.allclose(v_whole[start:start + 4], v_part, atol=1e-6)


def test_blur_changes_exactly_the_picked_samples():
    x = images(16, 32).float() / 255
    blurred = ops.gaussian_blur(x, torch.Generator().manual_seed(5), p=0.5)
    picked = ops.bernoulli(torch.Generator().manual_seed(5), 16, 0.5)
    changed = (blurred != x).flatten(1).any(dim=1)
    assert 0 < int(picked.sum()) < 16 and torch.equal(changed, picked)
    kernels = ops.blur_kernels(torch.tensor([0.1, 0.5, 2.0]), radius=3)
    assert torch.allclose(kernels.sum(dim=1), torch.ones(3)) and kernels.argmax(dim=1).eq(3).all()
