"""The ``gather_distributed`` option of the batch-dependent losses: 2 processes (gloo, CPU)
compute what 1 process computes on the concatenated batch, loss and gradient."""

import torch

from selfsup.losses import barlow_twins_loss, batch_info_nce, dcl_loss, dclw_loss, vicreg_loss
from tests.gloo import run_in_processes

LOSSES = {
    "barlow_twins": lambda a, b, gathered: barlow_twins_loss(a, b, 0.1, gather_distributed=gathered),
    "vicreg": lambda a, b, gathered: vicreg_loss(a, b, gather_distributed=gathered),
    "batch_info_nce": lambda a, b, gathered: batch_info_nce(a, b, 0.2, gather_distributed=gathered),
    "dcl": lambda a, b, gathered: dcl_loss(a, b, 0.2, gather_distributed=gathered),
    "dclw": lambda a, b, gathered: dclw_loss(a, b, 0.2, 0.5, gather_distributed=gathered),
}


def _parts(rank, world_size, z1, z2):
    n = len(z1) // world_size
    results = {}
    for name, loss_fn in LOSSES.items():
        mine1 = z1[rank * n:(rank + 1) * n].clone().requires_grad_(True)
        mine2 = z2[rank * n:(rank + 1) * n].clone().requires_grad_(True)
        loss = loss_fn(mine1, mine2, True)
        (loss / world_size).backward()  # DDP averages the ranks' gradients
        results[name] = (loss.item(), mine1.grad, mine2.grad)
    return results


def test_gathered_losses_equal_single_process():
    torch.manual_seed(0)
    z1, z2 = torch.randn(8, 5, dtype=torch.float64), torch.randn(8, 5, dtype=torch.float64)
    ranks = run_in_processes(_parts, z1, z2)
    for name, loss_fn in LOSSES.items():
        a, b = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
        loss = loss_fn(a, b, False)
        loss.backward()
        # the mean of the ranks' losses is the loss of the whole batch
        assert abs(sum(r[name][0] for r in ranks) / 2 - loss.item()) < 1e-6, name
        assert torch.allclose(torch.cat([r[name][1] for r in ranks]), a.grad, atol=1e-6), name
        assert torch.allclose(torch.cat([r[name][2] for r in ranks]), b.grad, atol=1e-6), name
