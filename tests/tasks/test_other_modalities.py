"""Every task takes a table or time-series run as it takes an image run: the embedding
tasks, and finetune (with FixMatch's views of the modality) and adapt."""

import pytest
import torch

from selfsup.config import ConfigError, PretrainConfig
from selfsup.tasks.adapt import adapt
from selfsup.tasks.cluster import cluster
from selfsup.tasks.curate import curate
from selfsup.tasks.dedupe import dedupe
from selfsup.modalities import get as modality
from selfsup.tasks.finetune import finetune, load_classifier
from selfsup.tasks.neighbors import neighbors
from selfsup.tasks import pretrain


@pytest.fixture(scope="module")
def wine_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tasks") / "wine"
    pretrain(PretrainConfig(data="wine", method="scarf", epochs=3, batch_size=64, out=str(out),
                            report=False))
    return out


def test_embedding_tasks_on_a_table_run(wine_run):
    rows = neighbors(wine_run, query="0,5", k=3)
    assert [(r[0], r[1], r[2]) for r in rows if r[1] == 1] == [("0", 1, "0"), ("5", 1, "5")]  # itself first
    result = cluster(wine_run, n_clusters=3, views=2, epochs=20, self_label_epochs=5)
    assert len(result["scan_ids"]) == 178 and result["classes"] == 3
    assert result["kmeans"]["accuracy"] > 0.5  # wine's three cultivars separate well (chance: 0.40)
    assert len(curate(wine_run, budget=30)["selected"]) == 30
    assert dedupe(wine_run)["samples"] == 178


def test_finetune_and_adapt_on_a_table_run(wine_run, tmp_path):
    result = finetune(wine_run, 5, mode="linear", pseudo_label=True, steps=100, out=tmp_path / "classifier")
    assert result["labelled"] == 15 and 0 < result["train"]["pseudo_labelled"] <= 1
    assert result["test_accuracy"] > 0.6  # 36 held-out wines, 3 classes (measured 0.89; chance 0.40)
    model, meta = load_classifier(tmp_path / "classifier")
    assert meta["modality"] == "table" and meta["input_shape"] == [13]
    adapted = adapt(tmp_path / "classifier", "wine", corruption="noise", severity=3)
    assert len(adapted["predictions"]) == 178
    assert {"accuracy_source_model", "accuracy_test_time_bn", "accuracy_tent"} <= set(adapted)
    with pytest.raises(ConfigError, match="only noise applies to tables"):
        adapt(tmp_path / "classifier", "wine", corruption="blur")
    with pytest.raises(ConfigError, match="image data, the model takes table data"):
        adapt(tmp_path / "classifier", "digits")


def test_fixmatch_views_of_tables_stay_in_raw_units():
    mean, std = [10.0, -5.0], [2.0, 0.5]
    x = torch.tensor(mean) + torch.tensor(std) * torch.randn(4096, 2, generator=torch.Generator().manual_seed(0))
    weak, strong = modality("table").fixmatch_views(None, mean, std)
    generator = torch.Generator().manual_seed(1)
    noise = weak(x, generator) - x  # light Gaussian noise of 0.05 feature std
    assert torch.allclose(noise.mean(dim=0), torch.zeros(2), atol=0.01)
    assert torch.allclose(noise.std(dim=0), 0.05 * torch.tensor(std), rtol=0.05)
    # the strong view (SCARF corruption of 30% of values, then noise) moves values much further
    assert (strong(x, generator) - x).abs().mean() > 5 * noise.abs().mean()


def test_fixmatch_views_of_series_keep_their_shape():
    x = torch.randn(8, 2, 50).cumsum(dim=2)
    weak, strong = modality("timeseries").fixmatch_views(None, [0.0, 0.0], [1.0, 1.0])
    generator = torch.Generator().manual_seed(0)
    assert weak(x, generator).shape == strong(x, generator).shape == x.shape
    assert not torch.equal(strong(x, generator), x)
