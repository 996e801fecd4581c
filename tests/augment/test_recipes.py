import pytest
import torch

from selfsup import augment
from selfsup.augment import ops, recipes

MEAN, STD = [0.5] * 3, [0.25] * 3


def images(n=8, size=32, seed=0):
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name, local_crops", [("swav", 6), ("dino", 8)])
def test_multicrop_recipes_return_globals_then_locals(name, local_crops):
    x = images(5, 32)
    views = augment.create(name, 32)(x, torch.Generator().manual_seed(0), MEAN, STD)
    assert len(views) == 2 + local_crops
    assert [v.shape for v in views[:2]] == [(5, 3, 32, 32)] * 2
    assert [v.shape for v in views[2:]] == [(5, 3, 14, 14)] * local_crops  # 3/7 of 32, as 96 of 224
    assert all(v.dtype == torch.float32 for v in views)
    assert len(augment.create(name, 224, local_crops=2).views) == 4
    assert [v.size for v in augment.create(name, 224, local_crops=2).views] == [224, 224, 96, 96]


@pytest.mark.parametrize("name", ["swav", "dino"])
def test_multicrop_views_reproducible_under_the_same_seed(name):
    x = images(6, 32)
    recipe = augment.create(name, 32, local_crops=3)
    run = lambda seed: recipe(x, torch.Generator().manual_seed(seed), MEAN, STD)
    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[2], c[2])
    assert not torch.equal(a[2], a[3])  # each local crop draws its own boxes


def test_any_recipe_gets_local_crops():
    for name in ("simclr", "byol"):
        plain = augment.create(name, 32)
        multi = augment.create(name, 32, local_crops=4)
        assert multi.views[:2] == plain.views and len(multi.views) == 6
        assert all(v.size == 14 and v.crop_scale == (0.05, 0.4) for v in multi.views[2:])
        views = multi(images(3, 32), torch.Generator().manual_seed(0), MEAN, STD)
        assert [v.shape[-1] for v in views] == [32, 32, 14, 14, 14, 14]
    custom = recipes.multicrop(recipes.simclr(64), 2, local_size=20, local_scale=(0.1, 0.2))
    assert [(v.size, v.crop_scale) for v in custom.views[2:]] == [(20, (0.1, 0.2))] * 2
    assert augment.create("simclr", 32, local_crops=0) == augment.create("simclr", 32)
    with pytest.raises(ValueError, match="local_crops"):
        recipes.multicrop(recipes.simclr(32), -1)


def test_dino_augmentations_follow_the_paper():
    first, second, *local = augment.create("dino", 96).views
    for view in (first, second, *local):  # BYOL's jitter, grayscale and flip
        assert (view.brightness, view.contrast, view.saturation, view.hue) == (0.4, 0.4, 0.2, 0.1)
        assert (view.jitter_p, view.grayscale_p, view.flip_p) == (0.8, 0.2, 0.5)
    assert (first.blur_p, first.solarize_p, first.crop_scale) == (1.0, 0.0, (0.4, 1.0))
    assert (second.blur_p, second.solarize_p, second.crop_scale) == (0.1, 0.2, (0.4, 1.0))
    assert all((v.blur_p, v.solarize_p, v.crop_scale, v.size) == (0.5, 0.0, (0.05, 0.4), 41) for v in local)
    small = augment.create("dino", 32).views  # no blur at 32 px and below
    assert all(v.blur_p == 0.0 for v in small) and small[1].solarize_p == 0.2


def test_swav_augmentations_follow_the_paper():
    views = augment.create("swav", 224).views
    for view in views:  # SimCLR's colour distortion of strength 1, blur p=0.5
        assert (view.brightness, view.contrast, view.saturation, view.hue) == (0.8, 0.8, 0.8, 0.2)
        assert (view.jitter_p, view.grayscale_p, view.blur_p, view.solarize_p) == (0.8, 0.2, 0.5, 0.0)
    assert [v.crop_scale for v in views] == [(0.14, 1.0)] * 2 + [(0.05, 0.14)] * 6
    assert augment.create("swav", 224, crop_scale=(0.3, 1.0)).views[0].crop_scale == (0.3, 1.0)


def test_local_crops_cover_a_smaller_area():
    # a one-pixel white square in a black image: a small crop over it is mostly white far
    # more often than a large one, so local crops show smaller regions at their own size
    x = torch.zeros(400, 3, 32, 32, dtype=torch.uint8)
    x[:, :, 15:17, 15:17] = 255
    spec_global, spec_local = recipes.dino(32).views[0], recipes.dino(32).views[2]
    generator = torch.Generator().manual_seed(0)
    big = ops.random_resized_crop(x, spec_global.size, generator, spec_global.crop_scale)
    small = ops.random_resized_crop(x, spec_local.size, generator, spec_local.crop_scale)
    assert small.mean(dim=(1, 2, 3)).max() > 4 * big.mean(dim=(1, 2, 3)).max()


def test_slices_of_a_batch_get_the_multicrop_views_of_the_whole_batch():
    x = images(8, 32)
    recipe = augment.create("dino", 32, local_crops=2)
    whole = recipe(x, torch.Generator().manual_seed(5), MEAN, STD)
    for start in (0, 4):
        part = recipe(x[start:start + 4], ops.SliceDraws(torch.Generator().manual_seed(5), 8, start), MEAN, STD)
        for v_whole, v_part in zip(whole, part):
            assert torch.allclose(v_whole[start:start + 4], v_part, atol=1e-6)
