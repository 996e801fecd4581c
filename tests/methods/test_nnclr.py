import math

import torch
import torch.nn.functional as F

from selfsup import backbones, methods
from selfsup.losses import batch_info_nce
from selfsup.methods.nnclr import nearest_neighbour


def make_nnclr(**options):
    torch.manual_seed(0)
    options = {"hidden_dim": 32, "projection_dim": 8, "queue_size": 20, **options}
    return methods.create("nnclr", backbones.create("smallcnn"), **options)


def views(n=8):
    return [torch.randn(n, 3, 16, 16), torch.randn(n, 3, 16, 16)]


def test_picks_the_true_nearest_neighbour_by_cosine():
    torch.manual_seed(0)
    z, support = torch.randn(5, 4), torch.randn(30, 4)
    support[3] *= 100  # a long vector must not win by its length alone
    found = nearest_neighbour(z, support)
    for z_i, found_i in zip(z.tolist(), found):
        def cos(s):
            return sum(a * b for a, b in zip(z_i, s)) / (math.hypot(*z_i) * math.hypot(*s))
        best = max(range(len(support)), key=lambda j: cos(support[j].tolist()))
        assert torch.equal(found_i, support[best])


def test_loss_uses_neighbours_of_projections_against_the_other_views_predictions():
    nnclr = make_nnclr(temperature=0.2)
    nnclr.eval()
    v1, v2 = views()
    support = nnclr.support.features.clone()
    loss = nnclr.training_step([v1, v2])["loss"]
    z1, z2 = nnclr.projector(nnclr.backbone(v1)), nnclr.projector(nnclr.backbone(v2))
    p1, p2 = nnclr.predictor(z1), nnclr.predictor(z2)
    nn1, nn2 = nearest_neighbour(z1, support), nearest_neighbour(z2, support)
    expected = (batch_info_nce(nn1, p2, 0.2) + batch_info_nce(nn2, p1, 0.2)) / 2
    assert torch.allclose(loss, expected, atol=1e-5)


def test_support_set_is_a_fifo_of_first_view_projections():
    nnclr = make_nnclr()
    nnclr.eval()
    v1, v2 = views()
    nnclr.training_step([v1, v2])
    z1 = F.normalize(nnclr.projector(nnclr.backbone(v1)), dim=1)
    nnclr.after_optimizer_step(0.0)
    assert torch.allclose(nnclr.support.features[:8], z1, atol=1e-6)
    assert nnclr.support.pointer.item() == 8 and "support.features" in nnclr.state_dict()
    nnclr.training_step(views())
    nnclr.after_optimizer_step(0.1)
    nnclr.training_step(views())
    nnclr.after_optimizer_step(0.2)
    assert nnclr.support.pointer.item() == 4  # 24 pushed into 20 slots


def test_no_gradient_into_the_support_set():
    nnclr = make_nnclr()
    loss = nnclr.training_step(views())["loss"]
    loss.backward()
    assert not nnclr.support.features.requires_grad
    assert all(p.grad is not None for p in nnclr.predictor.parameters())
