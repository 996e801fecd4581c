import torch

from selfsup.losses import normalized_mse


def test_normalized_mse_is_two_minus_two_cosine():
    torch.manual_seed(0)
    p, z = torch.randn(8, 5), torch.randn(8, 5)
    cos = torch.nn.functional.cosine_similarity(p, z, dim=1)
    assert torch.allclose(normalized_mse(p, z), (2 - 2 * cos).mean(), atol=1e-6)
    # and the squared distance of the unit vectors
    reference = ((p / p.norm(dim=1, keepdim=True) - z / z.norm(dim=1, keepdim=True)) ** 2).sum(1).mean()
    assert torch.allclose(normalized_mse(p, z), reference, atol=1e-6)


def test_normalized_mse_hand_case():
    assert normalized_mse(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])).item() == 2.0
    assert abs(normalized_mse(torch.tensor([[1.0, 0.0]]), torch.tensor([[3.0, 0.0]])).item()) < 1e-7


def test_target_gets_no_gradient():
    p = torch.randn(4, 3, requires_grad=True)
    z = torch.randn(4, 3, requires_grad=True)
    normalized_mse(p, z).backward()
    assert p.grad is not None and z.grad is None
