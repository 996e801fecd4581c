import torch

from selfsup import backbones, methods
from selfsup.losses import nt_xent


def test_simclr_step_is_nt_xent_of_projections():
    torch.manual_seed(0)
    simclr = methods.create("simclr", backbones.create("smallcnn"), temperature=0.3)
    simclr.eval()
    v1, v2 = torch.randn(6, 3, 16, 16), torch.randn(6, 3, 16, 16)
    loss = simclr.training_step([v1, v2])["loss"]
    z1, z2 = simclr.projector(simclr.backbone(v1)), simclr.projector(simclr.backbone(v2))
    assert torch.allclose(loss, nt_xent(z1, z2, 0.3), atol=1e-6)
    assert simclr.embed(v1).shape == (6, simclr.backbone.dim)
