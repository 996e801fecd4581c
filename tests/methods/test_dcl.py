import torch

from selfsup import backbones, methods
from selfsup.losses import dcl_loss, dclw_loss


def test_steps_are_the_decoupled_losses_of_the_projections():
    torch.manual_seed(0)
    v1, v2 = torch.randn(6, 3, 16, 16), torch.randn(6, 3, 16, 16)
    dcl = methods.create("dcl", backbones.create("smallcnn"), temperature=0.2).eval()
    dclw = methods.create("dclw", backbones.create("smallcnn"), temperature=0.2, sigma=0.7).eval()
    losses = {dcl: lambda a, b: dcl_loss(a, b, 0.2), dclw: lambda a, b: dclw_loss(a, b, 0.2, 0.7)}
    for method, loss_fn in losses.items():
        loss = method.training_step([v1, v2])["loss"]
        z1, z2 = method.projector(method.backbone(v1)), method.projector(method.backbone(v2))
        assert torch.allclose(loss, loss_fn(z1, z2), atol=1e-5)
    assert dclw.name == "dclw" and dcl.name == "dcl"
