import pytest
import torch

from selfsup import backbones, methods
from selfsup.losses.infonce import batch_info_nce
from selfsup.methods.masked_series import geometric_masks


def test_geometric_masks_hide_the_ratio_in_runs_of_the_mean_length():
    hidden = geometric_masks(64, 3, 400, 0.15, 3.0, torch.Generator().manual_seed(0))
    assert hidden.float().mean() == pytest.approx(0.15, abs=0.02)
    starts = (hidden[..., 1:] & ~hidden[..., :-1]).sum()  # runs that begin after a visible step
    assert hidden.sum() / starts == pytest.approx(3.0, rel=0.15)


def test_masked_series_step_and_its_saved_mask_state():
    torch.manual_seed(0)
    model = methods.create("masked_series", backbones.create("resnet1d_small", input_shape=[2, 32]), seed=5)
    x = torch.randn(4, 2, 32)
    out = model.training_step([x])
    loss, logs = out["loss"], out["logs"]
    loss.backward()
    assert torch.isfinite(loss) and 0 < logs["hidden_fraction"] < 0.5
    assert int(model.mask_step) == 1
    again = methods.create("masked_series", backbones.create("resnet1d_small", input_shape=[2, 32]), seed=5)
    again.load_state_dict(model.state_dict())
    assert torch.equal(again.mask_step, model.mask_step) and int(again.mask_seed) == 5


def test_masked_series_needs_per_step_features():
    with pytest.raises(ValueError, match="masked_series needs a series backbone"):
        methods.create("masked_series", backbones.create("mlp", input_shape=[4]))


def test_scarf_is_infonce_of_anchor_against_corrupted_rows():
    torch.manual_seed(0)
    model = methods.create("scarf", backbones.create("mlp", input_shape=[6]))
    anchor, corrupted = torch.randn(8, 6), torch.randn(8, 6)
    loss = model.training_step([anchor, corrupted])["loss"]
    expected = batch_info_nce(model.head(model.backbone(anchor)), model.head(model.backbone(corrupted)), 1.0)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("name, shape", [("mlp", [5]), ("mlp_layernorm", [5]), ("ft_transformer", [5]),
                                         ("resnet1d", [3, 20]), ("dilated_cnn", [3, 20]),
                                         ("series_transformer", [3, 20])])
def test_table_and_series_backbones_embed_to_their_dim(name, shape):
    backbone = backbones.create(name, input_shape=shape)
    assert backbone(torch.randn(4, *shape)).shape == (4, backbone.dim)
