import pytest
import torch

from selfsup import backbones, losses, methods


def embeddings(seed, n=32, dim=8):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


CASES = {
    "nt_xent": lambda z1, z2: losses.nt_xent(z1, z2, temperature=0.1),
    "barlow_twins": lambda z1, z2: losses.barlow_twins_loss(z1, z2),
    "vicreg": lambda z1, z2: losses.vicreg_loss(z1, z2),
    "wmse": lambda z1, z2: losses.wmse_loss([z1, z2], whiten_size=16, generator=torch.Generator().manual_seed(0)),
    "dino": lambda z1, z2: losses.dino_loss([z1, z2], [z2, z1], torch.zeros(8)),
    "sinkhorn": lambda z1, z2: losses.sinkhorn(z1 / 8),  # scores of the size of cosines
}


@pytest.mark.parametrize("name", CASES)
def test_losses_compute_in_float32_under_bf16_autocast(name):
    """Inside autocast a loss gives what it gives outside, on the same (bf16-rounded)
    embeddings: float32 throughout, so whitening, Sinkhorn and small temperatures stay exact."""
    z1, z2 = embeddings(0).bfloat16(), embeddings(1).bfloat16()
    expected = CASES[name](z1.float(), z2.float())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = CASES[name](z1, z2)
    assert got.dtype == torch.float32
    assert torch.equal(got, expected)


def test_gradients_reach_bf16_embeddings_through_the_float32_loss():
    z1, z2 = embeddings(0).bfloat16().requires_grad_(), embeddings(1).bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses.wmse_loss([z1, z2], whiten_size=16).backward()
    assert z1.grad.dtype == torch.bfloat16 and z1.grad.abs().sum() > 0


def test_wmse_trains_under_bf16_autocast():
    """W-MSE's Cholesky whitening used to fail on bf16 projector outputs."""
    torch.manual_seed(0)
    method = methods.create("wmse", backbones.create("smallcnn"))
    views = [torch.rand(72, 3, 16, 16) for _ in range(2)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = method.training_step(views)["loss"]
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
