"""Every registered modality answers what the rest of the package asks it."""

import pytest
import torch

from selfsup import backbones, modalities
from selfsup.config import ConfigError

SAMPLES = {"image": torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8),
           "table": torch.randn(8, 5), "timeseries": torch.randn(8, 2, 24)}


@pytest.mark.parametrize("name", sorted(modalities.MODALITIES))
def test_modality_conformance(name):
    modality = modalities.get(name)
    samples = SAMPLES[name]
    mean, std = [0.0] * samples.shape[1], [1.0] * samples.shape[1]
    backbone = modality.default_backbone(16)
    assert backbones.MODALITY[backbone] == name
    views = modality.views("simclr", 16)(samples, torch.Generator().manual_seed(0), mean, std)
    assert len(views) == 2 and views[0].shape[0] == len(samples)
    weak, strong = modality.fixmatch_views(16, mean, std)
    for view in (weak, strong):
        assert view(samples, torch.Generator().manual_seed(0)).shape == samples.shape
    shifted = modality.corrupt(samples, "noise", 3, seed=0, std=std)
    assert shifted.dtype == samples.dtype and shifted.shape == samples.shape and not torch.equal(shifted, samples)
    with pytest.raises(ConfigError, match="corruption='fog'"):
        modality.corrupt(samples, "fog")
    if "blur" not in modality.corruptions:
        with pytest.raises(ConfigError, match=f"only noise applies to {modality.plural}"):
            modality.corrupt(samples, "blur")
    assert modality.thumbnail(samples[0], mean, std).startswith("data:image/png;base64,")


def test_unknown_modality_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown modality 'audio'; known: image"):
        modalities.get("audio")
