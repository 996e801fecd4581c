import pytest
import torch

from selfsup import modalities
from selfsup.augment.ops import SliceDraws
from selfsup.augment.tables import corrupt_features, scarf
from selfsup.augment.timeseries import (mask_spans, permute_segments, read_at, time_warp,
                                        window_slice)


def test_scarf_corruption_draws_from_each_features_batch_values(generator):
    x = torch.arange(400.0).reshape(100, 4)  # every value unique: donors are traceable
    corrupted = corrupt_features(x, generator, 0.6)
    changed = corrupted != x
    assert 0.5 < changed.float().mean() < 0.7
    for j in range(4):  # a replaced value comes from the same feature of another row
        assert set(corrupted[:, j].tolist()) <= set(x[:, j].tolist())
    assert torch.equal(corrupt_features(x, generator, 0.0), x)


def test_scarf_recipe_is_clean_anchor_and_corrupted_view(generator):
    x = torch.randn(64, 5) * 3 + 7
    anchor, corrupted = scarf()(x, generator, x.mean(0).tolist(), x.std(0).tolist())
    assert torch.allclose(anchor.mean(0), torch.zeros(5), atol=1e-5)
    assert 0.4 < (anchor != corrupted).float().mean() < 0.7


def test_series_ops_without_change_are_identities(generator):
    x = torch.randn(8, 3, 50)
    assert torch.allclose(window_slice(x, generator, (1.0, 1.0)), x, atol=1e-5)
    assert torch.equal(time_warp(x, generator, 0.2, p=0.0), x)
    assert torch.equal(read_at(x, torch.arange(50.0).expand(8, -1)), x)


def test_permutation_shuffles_whole_segments(generator):
    x = torch.arange(10.0).expand(16, 1, -1).contiguous()
    shuffled = permute_segments(x, generator, segments=4)
    for row in shuffled[:, 0]:
        assert sorted(row.tolist()) == list(range(10))
        assert sum(1 for a, b in zip(row[:-1], row[1:]) if b != a + 1) <= 3  # at most 4 runs
    assert not torch.equal(shuffled, x)


def test_masked_spans_hide_about_the_rate(generator):
    x = torch.ones(64, 2, 100)
    hidden = mask_spans(x, generator, 0.3) == 0
    assert 0.2 < hidden.float().mean() < 0.4
    assert torch.equal(hidden[:, 0], hidden[:, 1])  # a span hides every channel


@pytest.mark.parametrize("modality, shape", [("table", (8, 5)), ("timeseries", (8, 2, 30))])
def test_two_processes_get_the_views_one_process_would(modality, shape):
    recipe = modalities.get(modality).views("simclr")
    x = torch.randn(*shape)
    mean, std = [0.0] * shape[1], [1.0] * shape[1]
    whole = recipe(x, torch.Generator().manual_seed(3), mean, std)
    halves = [recipe(x[r * 4:(r + 1) * 4], SliceDraws(torch.Generator().manual_seed(3), 8, r * 4), mean, std)
              for r in range(2)]
    if modality == "timeseries":  # the batch's marginals differ for tables; series ops are per sample
        for v in range(2):
            assert torch.allclose(torch.cat([halves[0][v], halves[1][v]]), whole[v], atol=1e-5)
    assert [v.shape for v in halves[0]] == [torch.Size((4,) + shape[1:])] * 2


def test_a_recipe_a_modality_lacks_is_named():
    with pytest.raises(ValueError, match="no table views for recipe 'mae'"):
        modalities.get("table").views("mae")
