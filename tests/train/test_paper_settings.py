"""What ``resolve`` takes from each method's paper: the warm-up (none where the paper has
none), and MoCo v3's optimizer, warm-up and crop for the kind of backbone in use."""

import pytest
import torch

from selfsup.augment import RECIPES
from selfsup.config import PretrainConfig
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
