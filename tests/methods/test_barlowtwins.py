import torch

from selfsup import backbones, methods
from selfsup.losses import barlow_twins_loss


def test_step_is_the_loss_of_the_projections():
    torch.manual_seed(0)
    barlow = methods.create("barlowtwins", backbones.create("smallcnn"), hidden_dim=32, projection_dim=16,
                            off_diagonal_weight=0.1)
    barlow.eval()
    v1, v2 = torch.randn(6, 3, 16, 16), torch.randn(6, 3, 16, 16)
    loss = barlow.training_step([v1, v2])["loss"]
    z1, z2 = barlow.projector(barlow.backbone(v1)), barlow.projector(barlow.backbone(v2))
    assert torch.allclose(loss, barlow_twins_loss(z1, z2, 0.1), atol=1e-5)
    assert methods.METHODS["barlowtwins"].optimizer.name == "lars"
