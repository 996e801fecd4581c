"""Backbones of other libraries by name (timm/NAME, torchvision/NAME) and a user's module."""

import sys

import pytest
import torch
from torch import nn

from selfsup import augment, backbones, methods
from selfsup.config import ConfigError, PretrainConfig, validate
from selfsup.train.run import prepare


def test_timm_model_gives_pooled_features_and_keeps_its_architecture():
    resnet = backbones.create("timm/resnet18", image_size=16)
    assert resnet.dim == 512 and resnet(torch.randn(2, 3, 16, 16)).shape == (2, 512)
    assert isinstance(resnet.net.conv1, nn.Conv2d) and resnet.net.conv1.kernel_size == (7, 7)  # no small stem
    assert not resnet.changes and not any(k.startswith("fc.") for k in resnet.net.state_dict())


def test_timm_vit_gets_the_image_size_unless_given():
    vit = backbones.create("timm/vit_tiny_patch16_224", image_size=32)
    assert vit.model_args == {"img_size": 32} and vit.net.patch_embed.grid_size == (2, 2)
    assert vit.dim == 192 and vit(torch.randn(2, 3, 32, 32)).shape == (2, 192)
    given = backbones.create("timm/vit_tiny_patch16_224", image_size=32, options={"img_size": 64, "depth": 1})
    assert given.net.patch_embed.grid_size == (4, 4) and len(given.net.blocks) == 1


def test_torchvision_model_loses_only_its_last_classifier_layer():
    small = backbones.create("torchvision/mobilenet_v3_small", image_size=32)
    assert small.classifier == "classifier.3" and isinstance(small.net.classifier[3], nn.Identity)
    assert small.dim == 1024 and small(torch.randn(2, 3, 32, 32)).shape == (2, 1024)
    resnet = backbones.create("torchvision/resnet18", image_size=16, small_stem=True)
    assert resnet.classifier == "fc" and resnet.net.conv1.stride == (1, 1) and isinstance(resnet.net.maxpool, nn.Identity)
    assert resnet.changes[-1] == "model.maxpool = torch.nn.Identity()"


def test_small_stem_needs_a_resnet_stem():
    with pytest.raises(ConfigError, match="small_stem=True: timm/vit_tiny_patch16_224 has no ResNet stem"):
        backbones.create("timm/vit_tiny_patch16_224", image_size=32, small_stem=True)


def test_names_and_options_are_checked_in_one_line():
    with pytest.raises(ConfigError, match=r"backbone='timm/resnet1': not in timm.list_models\(\) .*close: resnet"):
        validate(PretrainConfig(data="digits", backbone="timm/resnet1"))
    with pytest.raises(ConfigError, match=r"backbone='torchvision/resnet': not in torchvision"):
        validate(PretrainConfig(data="digits", backbone="torchvision/resnet"))
    with pytest.raises(ConfigError, match="backbone='resnet': expected one of smallcnn, .*timm/NAME or torchvision/NAME"):
        validate(PretrainConfig(data="digits", backbone="resnet"))
    with pytest.raises(ConfigError, match=r"backbone_options=\{'depth': 2\}: resnet18 takes none; a library's"):
        validate(PretrainConfig(data="digits", backbone="resnet18", backbone_options={"depth": 2}))
    with pytest.raises(ConfigError, match=r"backbone_options=\{'width': 2\}: dilated_cnn takes hidden_dims, "
                                          r"output_dims, depth;"):
        validate(PretrainConfig(data="GunPoint", backbone="dilated_cnn", backbone_options={"width": 2}))
    with pytest.raises(ConfigError, match=r"backbone_options.depth=2.5: expected int"):
        backbones.create("dilated_cnn", input_shape=[1, 8], options={"depth": 2.5})
    with pytest.raises(ConfigError, match=r"backbone_options=\{'colour': 1\}: timm/resnet18 cannot be built with them"):
        backbones.create("timm/resnet18", options={"colour": 1})


@pytest.mark.parametrize("backbone, small_stem", [("resnet18", True), ("timm/resnet18", False),
                                                  ("torchvision/resnet18", False)])
def test_small_stem_default_depends_on_the_backbone_and_is_recorded(tmp_path, backbone, small_stem):
    prepared = prepare(PretrainConfig(data="digits", backbone=backbone, image_size=16, epochs=1, holdout=0.9, batch_size=64,
                                      out=str(tmp_path / "r")))
    saved = PretrainConfig.load(tmp_path / "r" / "config.yaml")
    assert saved.small_stem is small_stem and saved.backbone_options == {}
    net = prepared.method.backbone.net
    assert (net.conv1.kernel_size == (3, 3)) is small_stem


def test_masked_image_methods_refuse_library_vits_in_one_line():
    vit = backbones.create("timm/vit_tiny_patch16_224", image_size=32)
    with pytest.raises(ConfigError, match="MAE needs a ViT backbone .* got timm/vit_tiny_patch16_224"):
        methods.create("mae", vit)


def test_a_users_module_trains_through_the_python_api():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    backbone = backbones.wrap(module)  # dim measured by a forward pass
    assert backbone.dim == 8 and backbones.wrap(module, dim=8).dim == 8
    method = methods.create("simclr", backbone, hidden_dim=16, projection_dim=8)
    images = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    views = augment.create("simclr", 16)(images, torch.Generator().manual_seed(0), (0.5,) * 3, (0.25,) * 3)
    optimizer = torch.optim.SGD(method.parameters(), lr=0.1)
    loss = method.training_step(views)["loss"]
    loss.backward()
    before = module[0].weight.detach().clone()
    optimizer.step()
    assert not torch.equal(before, module[0].weight) and method.embed(views[0]).shape == (8, 8)
    with pytest.raises(ConfigError, match=r"expected a \(batch, dim\) output, got \(2, 3, 4, 4\)"):
        backbones.wrap(nn.Identity(), input_shape=(3, 4, 4))


def test_help_does_not_import_the_libraries():
    import subprocess

    code = "import sys; from selfsup.cli import build_parser; build_parser(); " \
           "print(sorted(m for m in ('timm', 'onnx') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
