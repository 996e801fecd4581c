"""What ``resolve`` takes from each method's paper: the warm-up (none where the paper has
none), MoCo v3's optimizer, warm-up and crop for the kind of backbone in use, SimCLR's
optimizer for the image size (and any method's crop and options there), and each method's
augmentation strength and crop for the image size."""

import pytest
import torch

from selfsup import augment
from selfsup.augment import RECIPES
from selfsup.config import PretrainConfig
from selfsup.train import run
from selfsup.data.sources import ImageSource
from selfsup.methods import METHODS
from selfsup.train.run import resolve

NO_WARMUP = {"moco", "simsiam", "rotnet"}  # MoCo v2, SimSiam and RotNet decay from the first step


def source(size=32):
    return ImageSource("tiny", torch.zeros(4, 3, size, size, dtype=torch.uint8), [str(i) for i in range(4)])


def resolved(method, size=32, **options):
    return resolve(PretrainConfig(data="tiny", method=method, **options), source(size))


@pytest.mark.parametrize("method", [m for m, cls in METHODS.items() if cls.recipe in RECIPES])  # image methods
def test_warmup_is_the_papers(method):
    expected = 0 if method in NO_WARMUP else 10
    assert resolved(method, epochs=100).warmup_epochs == expected
    assert resolved(method, epochs=3).warmup_epochs == (0 if method in NO_WARMUP else 1)
    assert resolved(method, epochs=100, warmup_epochs=5).warmup_epochs == 5  # an explicit value wins


def test_mocov3_takes_the_resnet_or_the_vit_setting_from_the_backbone():
    resnet = resolved("mocov3", epochs=300, backbone="resnet18")
    assert (resnet.optimizer, resnet.lr, resnet.weight_decay, resnet.warmup_epochs, resnet.crop_min_scale) == \
        ("lars", 0.6, 1e-6, 30, 0.2)
    vit = resolved("mocov3", epochs=300, backbone="vit_mini")
    assert (vit.optimizer, vit.lr, vit.weight_decay, vit.warmup_epochs, vit.crop_min_scale) == \
        ("adamw", 1.5e-4, 0.1, 40, 0.08)
    assert resolved("mocov3", epochs=300, backbone="vit_mini", lr=1e-3, optimizer="sgd").optimizer == "sgd"


def test_simclr_takes_its_authors_cifar_optimizer_on_cifar_sized_images():
    """google-research/simclr's README trains CIFAR-10 with LARS, lr 1.0 x B/256, weight decay
    1e-4; its ImageNet setting (the paper's) is lr 0.3, weight decay 1e-6."""
    for method in ("simclr", "dcl", "dclw"):  # DCL keeps SimCLR's setup
        small, large = resolved(method, 32), resolved(method, 64)
        assert (small.optimizer, small.lr, small.weight_decay) == ("lars", 1.0, 1e-4)
        assert (large.optimizer, large.lr, large.weight_decay) == ("lars", 0.3, 1e-6)
    explicit = resolved("simclr", 32, lr=0.5, weight_decay=0.0)
    assert (explicit.lr, explicit.weight_decay) == (0.5, 0.0)  # explicit values win
    supcon = resolved("supcon", 32)  # SupCon has one setting for every size
    assert (supcon.lr, supcon.weight_decay) == (0.3, 1e-6)


def test_small_image_settings_set_the_optimizer_crop_and_method_options_below_33_px(monkeypatch):
    """A method's ``small_image_settings`` (its authors' CIFAR-10 setting) apply at 32 px or
    less, each of optimizer, crop and method options; explicit values still win."""
    from selfsup import catalogue
    from selfsup.methods.base import OptimizerDefaults
    from selfsup.methods.moco import MoCo

    monkeypatch.setattr(MoCo, "small_image_settings", dict(
        optimizer=OptimizerDefaults("sgd", lr=0.03, weight_decay=5e-4), crop_min_scale=0.08,
        options=dict(temperature=0.1)))
    small, large = resolved("moco", 32), resolved("moco", 64)
    assert (small.optimizer, small.lr, small.weight_decay, small.crop_min_scale, small.temperature) == \
        ("sgd", 0.03, 5e-4, 0.08, 0.1)
    assert (large.optimizer, large.lr, large.weight_decay, large.crop_min_scale, large.temperature) == \
        ("sgd", 0.03, 1e-4, 0.2, 0.2)
    assert small.method_options["temperature"] == 0.1 and large.method_options["temperature"] == 0.2
    explicit = resolved("moco", 32, temperature=0.3, crop_min_scale=0.5)
    assert (explicit.temperature, explicit.method_options["temperature"], explicit.crop_min_scale) == (0.3, 0.3, 0.5)
    assert resolved("moco", 32, method_options={"temperature": 0.4}).method_options["temperature"] == 0.4
    monkeypatch.setattr(catalogue, "load", catalogue.from_registry)  # what `selfsup methods moco` would say
    assert ("on images of 32 px or less: sgd, lr 0.03 x batch/256, weight decay 0.0005; crops down to 0.08 "
            "of the area; temperature=0.1") in catalogue.card("moco")


# (crop scale, brightness/contrast/saturation/hue, blur p) of each method's views, by image size
PAPER_VIEWS = {
    32: {"simclr": ((0.08, 1.0), (0.4, 0.4, 0.4, 0.1), 0.0),  # SimCLR's CIFAR-10: strength 0.5, no blur
         "moco": ((0.2, 1.0), (0.4, 0.4, 0.4, 0.1), 0.0),  # MoCo v2's crop and jitter
         "simsiam": ((0.2, 1.0), (0.4, 0.4, 0.4, 0.1), 0.0),
         "supcon": ((0.2, 1.0), (0.4, 0.4, 0.4, 0.1), 0.0)},  # SupContrast's CIFAR views
    224: {"simclr": ((0.08, 1.0), (0.8, 0.8, 0.8, 0.2), 0.5),  # SimCLR's ImageNet: strength 1, blur
          "moco": ((0.2, 1.0), (0.4, 0.4, 0.4, 0.1), 0.5),  # MoCo v2's ImageNet augmentation
          "simsiam": ((0.2, 1.0), (0.4, 0.4, 0.4, 0.1), 0.5),
          "supcon": ((0.08, 1.0), (0.8, 0.8, 0.8, 0.2), 0.5)},  # SimAugment
}


@pytest.mark.parametrize("size", [32, 224])
@pytest.mark.parametrize("method", ["simclr", "moco", "simsiam", "supcon"])
def test_views_are_the_papers_for_the_image_size(method, size):
    config = resolved(method, size)
    crop, jitter, blur = PAPER_VIEWS[size][method]
    assert config.crop_min_scale == crop[0]
    views = run.views(config, "image", METHODS[method].recipe).views
    assert len(views) == 2
    for view in views:
        assert view.crop_scale == crop and view.size == size
        assert (view.brightness, view.contrast, view.saturation, view.hue) == pytest.approx(jitter)
        assert (view.jitter_p, view.grayscale_p, view.blur_p) == (0.8, 0.2, blur)


def test_recipe_strength_and_crop_are_options():
    view = augment.create("simclr", 32, jitter_strength=1.0).views[0]
    assert (view.brightness, view.hue) == (0.8, 0.2)
    view = augment.create("mocov2", 224, jitter_strength=0.25, crop_scale=(0.5, 1.0), blur=False).views[0]
    assert (view.brightness, view.hue, view.crop_scale, view.blur_p) == (0.2, 0.05, (0.5, 1.0), 0.0)
    assert augment.create("supcon", 224, crop_scale=(0.3, 1.0)).views[0].crop_scale == (0.3, 1.0)
    assert resolved("moco", 32, crop_min_scale=0.5).crop_min_scale == 0.5  # an explicit crop wins
