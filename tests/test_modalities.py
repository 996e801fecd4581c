"""Every registered modality answers what the rest of the package asks it."""

import pytest
import torch

from selfsup import backbones, modalities
from selfsup.config import ConfigError
from selfsup.data import DataError, ImageSource

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
    mean, std = modality.statistics(samples)  # one per colour channel, feature or series channel
    assert len(mean) == len(std) == samples.shape[1] and min(std) > 0
    over = [0] + list(range(2, samples.ndim))
    unit = samples.double() / (255 if samples.dtype == torch.uint8 else 1)
    assert mean == pytest.approx(unit.mean(dim=over).tolist(), rel=1e-5, abs=1e-6)
    assert std == pytest.approx(unit.std(dim=over).tolist(), rel=1e-5, abs=1e-6)


def test_unknown_modality_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown modality 'audio'; known: image"):
        modalities.get("audio")


def test_open_source_asks_each_modality_and_names_every_format(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="notes.txt: not a folder of images, WebDataset .tar shards, a Parquet file of encoded images, "
                                        "an integer .npy/.npz array, "
                                        "a .csv/.parquet table, a .ts file or a float .npy/.npz array"):
        modalities.open_source(str(tmp_path / "notes.txt"))

    class Toy(modalities.Modality):  # a new modality: which files it reads and how
        name, plural, formats = "toy", "toys", ("a .toy file",)

        def accepts(self, path):
            return path.suffix == ".toy"

        def load(self, path, image_size=None, label_column=None, cache_dir=None, data_mode="memory"):
            return ImageSource(path.name, torch.zeros(1, 3, 4, 4, dtype=torch.uint8), ["0"])

    (tmp_path / "x.toy").write_text("")
    modalities.register(Toy)
    try:
        assert modalities.open_source(str(tmp_path / "x.toy")).name == "x.toy"
    finally:
        modalities.MODALITIES.pop("toy")
