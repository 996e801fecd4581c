"""The ``gather_distributed`` option of the batch-dependent losses: 2 processes (gloo, CPU)
compute what 1 process computes on the concatenated batch, loss and gradient; and the
batch statistics without gradient (SwAV's Sinkhorn codes, with its queue, and DINO's centre)."""

import torch

from selfsup import backbones, methods
from selfsup.losses import (barlow_twins_loss, batch_info_nce, dcl_loss, dclw_loss, hierarchical_contrastive_loss,
                            sinkhorn, supcon_loss, swav_loss, updated_center, vicreg_loss, wmse_loss)
from tests.gloo import run_in_processes

LOSSES = {
    "barlow_twins": lambda a, b, gathered: barlow_twins_loss(a, b, 0.1, gather_distributed=gathered),
    "vicreg": lambda a, b, gathered: vicreg_loss(a, b, gather_distributed=gathered),
    "batch_info_nce": lambda a, b, gathered: batch_info_nce(a, b, 0.2, gather_distributed=gathered),
    "dcl": lambda a, b, gathered: dcl_loss(a, b, 0.2, gather_distributed=gathered),
    "dclw": lambda a, b, gathered: dclw_loss(a, b, 0.2, 0.5, gather_distributed=gathered),
    # the sub-batch split comes from a generator every process seeds alike
    "wmse": lambda a, b, gathered: wmse_loss([a, b], 8, torch.Generator().manual_seed(3),
                                             gather_distributed=gathered),
    # TS2Vec: each row read as a series of 5 steps of 1-d representations
    "ts2vec": lambda a, b, gathered: hierarchical_contrastive_loss(a.reshape(len(a), 5, 1), b.reshape(len(b), 5, 1),
                                                                   gather_distributed=gathered),
}
# SupCon's positives come from the labels, so each rank gathers its slice of them too
SUPCON_LABELS = torch.tensor([0, 1, 0, 2, 1, 3, 3, 0])  # 2 once; 0 and 3 on both ranks


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


def _supcon_part(rank, world_size, z1, z2, labels):
    n = len(z1) // world_size
    part = slice(rank * n, (rank + 1) * n)
    mine1, mine2 = z1[part].clone().requires_grad_(True), z2[part].clone().requires_grad_(True)
    loss = supcon_loss(mine1, mine2, labels[part], 0.1, gather_distributed=True)
    (loss / world_size).backward()
    return loss.item(), mine1.grad, mine2.grad


def test_gathered_supcon_equals_single_process():
    torch.manual_seed(2)
    z1, z2 = torch.randn(8, 5, dtype=torch.float64), torch.randn(8, 5, dtype=torch.float64)
    ranks = run_in_processes(_supcon_part, z1, z2, SUPCON_LABELS)
    a, b = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    loss = supcon_loss(a, b, SUPCON_LABELS, 0.1)
    loss.backward()
    assert abs(sum(r[0] for r in ranks) / 2 - loss.item()) < 1e-6
    assert torch.allclose(torch.cat([r[1] for r in ranks]), a.grad, atol=1e-6)
    assert torch.allclose(torch.cat([r[2] for r in ranks]), b.grad, atol=1e-6)


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


def _codes_and_centre(rank, world_size, scores, teacher, queue, prototypes):
    n, m = len(scores) // world_size, len(teacher) // world_size
    mine = scores[rank * n:(rank + 1) * n]
    codes = sinkhorn(mine, 0.05, 3, gather_distributed=True)
    loss = swav_loss([mine, mine.flip(1)], [codes], 0.1)
    center = updated_center(torch.ones(1, teacher.shape[1], dtype=teacher.dtype),
                            teacher[rank * m:(rank + 1) * m], 0.9, gather_distributed=True)
    # SwAV's queue: every process holds all of it and brings its share to the Sinkhorn
    swav = methods.create("swav", backbones.create("smallcnn"), projection_dim=queue.shape[1],
                          num_prototypes=len(prototypes), queue_size=len(queue), queue_start=0.0,
                          gather_distributed=True).double()
    with torch.no_grad():
        swav.prototypes.weight.copy_(prototypes)
        swav.queues[0].features.copy_(queue)
        swav.queued.fill_(len(queue))
    queued_codes = swav.codes(mine, 0)
    swav.pending = [prototypes[rank * 2:(rank + 1) * 2]] * 2  # stand-ins for this process's projections
    swav.after_optimizer_step(0.5)  # pushes every process's projections
    return codes, loss.item(), center, queued_codes, swav.queues[0].features[:4].clone()


def test_gathered_sinkhorn_and_dino_centre_equal_single_process():
    torch.manual_seed(1)
    scores = torch.nn.functional.normalize(torch.randn(8, 4, dtype=torch.float64), dim=1)
    teacher = torch.randn(6, 5, dtype=torch.float64)
    queue = torch.nn.functional.normalize(torch.randn(6, 3, dtype=torch.float64), dim=1)
    prototypes = torch.nn.functional.normalize(torch.randn(4, 3, dtype=torch.float64), dim=1)
    ranks = run_in_processes(_codes_and_centre, scores, teacher, queue, prototypes)
    codes = sinkhorn(scores, 0.05, 3)
    assert torch.allclose(torch.cat([r[0] for r in ranks]), codes, atol=1e-10)
    loss = swav_loss([scores, scores.flip(1)], [codes], 0.1)
    assert abs(sum(r[1] for r in ranks) / 2 - loss.item()) < 1e-8
    center = updated_center(torch.ones(1, 5, dtype=torch.float64), teacher, 0.9)
    assert all(torch.allclose(r[2], center, atol=1e-10) for r in ranks)
    with_queue = sinkhorn(torch.cat([queue @ prototypes.T, scores]), 0.05, 3)[-8:]
    assert torch.allclose(torch.cat([r[3] for r in ranks]), with_queue, atol=1e-10)
    assert all(torch.equal(r[4], prototypes) for r in ranks)  # both ranks queued both parts
