import torch

from selfsup import backbones, methods
from selfsup.losses import vicreg_loss


def test_step_is_the_loss_of_the_expanded_embeddings():
    torch.manual_seed(0)
    vicreg = methods.create("vicreg", backbones.create("smallcnn"), hidden_dim=32, projection_dim=16)
    vicreg.eval()
    v1, v2 = torch.randn(6, 3, 16, 16), torch.randn(6, 3, 16, 16)
    loss = vicreg.training_step([v1, v2])["loss"]
    z1, z2 = vicreg.expander(vicreg.backbone(v1)), vicreg.expander(vicreg.backbone(v2))
    assert torch.allclose(loss, vicreg_loss(z1, z2, 25.0, 25.0, 1.0), atol=1e-4)
