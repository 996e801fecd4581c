import torch

from selfsup import backbones, methods
from selfsup.losses import wmse_loss
from selfsup.methods.masking import step_generator


def make(**options):
    torch.manual_seed(0)
    return methods.create("wmse", backbones.create("smallcnn"), hidden_dim=32, projection_dim=8,
                          whiten_size=12, seed=5, **options)


def test_step_is_the_loss_of_the_projections_with_the_split_of_its_step():
    wmse = make()
    wmse.eval()
    views = [torch.randn(24, 3, 16, 16) for _ in range(3)]  # more than 2 views: every pair
    wmse.training_step(views)  # step 0
    loss = wmse.training_step(views)["loss"]  # step 1
    projections = [wmse.projector(wmse.backbone(v)) for v in views]
    expected = wmse_loss(projections, 12, step_generator(5, 1))
    assert torch.allclose(loss, expected, atol=1e-5)
    assert int(wmse.split_step) == 2
    # the split is saved with the weights: a method rebuilt from them draws the same next split
    rebuilt = make()
    rebuilt.load_state_dict(wmse.state_dict())
    rebuilt.eval()
    assert torch.allclose(rebuilt.training_step(views)["loss"], wmse.training_step(views)["loss"], atol=1e-6)


def test_pretrain_refuses_a_batch_too_small_to_whiten(tmp_path):
    import pytest

    from selfsup.config import ConfigError, PretrainConfig
    from selfsup.tasks import pretrain

    with pytest.raises(ConfigError, match="batch_size=32: method wmse needs at least 65"):
        pretrain(PretrainConfig(data="digits", method="wmse", batch_size=32, epochs=1,
                                out=str(tmp_path / "run")))
