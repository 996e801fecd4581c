import pytest
import torch

from selfsup import augment


@pytest.mark.parametrize("name, scale, flip", [("mae", (0.2, 1.0), 0.5), ("ijepa", (0.3, 1.0), 0.0),
                                               ("rotnet", (0.5, 1.0), 0.5)])
def test_one_view_of_crop_and_flip_without_colour_changes(name, scale, flip):
    recipe = augment.create(name, 16)
    (view,) = recipe.views
    assert recipe.name == name and view.crop_scale == scale and view.flip_p == flip
    assert view.jitter_p == view.grayscale_p == view.blur_p == view.solarize_p == 0
    # images of one random colour each come out in exactly that colour
    colours = torch.randint(0, 256, (6, 3, 1, 1), dtype=torch.uint8)
    (out,) = recipe(colours.expand(6, 3, 24, 24), torch.Generator().manual_seed(0), [0.0] * 3, [1.0] * 3)
    assert out.shape == (6, 3, 16, 16)
    assert torch.allclose(out, colours.float().expand(6, 3, 16, 16) / 255, atol=1e-5)
    assert augment.create(name, 16, crop_scale=(0.9, 1.0)).views[0].crop_scale == (0.9, 1.0)
