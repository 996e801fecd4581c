import inspect

import torch
import torch.nn.functional as F

from selfsup import augment, backbones, methods
from selfsup.losses import sinkhorn, swav_loss
from selfsup.methods.multicrop import forward_multicrop


def make_swav(**options):
    torch.manual_seed(0)
    options = {"hidden_dim": 32, "projection_dim": 8, "num_prototypes": 6, **options}
    return methods.create("swav", backbones.create("smallcnn"), **options)


def multicrop_views(n=8, local_crops=3, seed=0):
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    recipe = augment.create(methods.METHODS["swav"].recipe, 32, local_crops=local_crops)
    return recipe(images, torch.Generator().manual_seed(seed), [0.5] * 3, [0.25] * 3)


def test_training_step_on_recipe_views_reaches_backbone():
    torch.manual_seed(0)
    swav = methods.create("swav", backbones.create("smallcnn"), freeze_prototypes=0)
    views = multicrop_views()
    assert [v.shape[-1] for v in views] == [32, 32, 14, 14, 14]
    out = swav.training_step(views)
    loss, logs = out["loss"], out["logs"]
    assert torch.isfinite(loss) and logs["prototypes_frozen"] == 0.0
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in swav.backbone.parameters())
    assert swav.prototypes.weight.grad is not None
    assert (swav.name, swav.recipe, swav.year) == ("swav", "swav", 2020) and "Cluster Assignments" in swav.paper
    assert {"temperature", "gather_distributed"} <= set(inspect.signature(type(swav).__init__).parameters)


def test_loss_is_swapped_prediction_of_sinkhorn_codes_of_the_global_views():
    swav = make_swav(temperature=0.2, epsilon=0.1, sinkhorn_iterations=4)
    swav.eval()  # BatchNorm on running statistics, so the pieces can be recomputed
    views = multicrop_views()
    loss = swav.training_step(views)["loss"]
    z = F.normalize(swav.projector(forward_multicrop(swav.backbone, views)), dim=1)
    scores = (z @ F.normalize(swav.prototypes.weight, dim=1).T).chunk(len(views))
    codes = [sinkhorn(s, 0.1, 4) for s in scores[:2]]
    assert torch.allclose(loss, swav_loss(scores, codes, 0.2), atol=1e-5)


def test_prototypes_are_renormalised_every_step():
    swav = make_swav()
    with torch.no_grad():
        swav.prototypes.weight.mul_(torch.rand(6, 1) * 3 + 0.5)
    swav.training_step(multicrop_views())
    assert torch.allclose(swav.prototypes.weight.norm(dim=1), torch.ones(6), atol=1e-6)


def test_prototypes_are_frozen_for_the_first_steps():
    swav = make_swav(freeze_prototypes=2)
    for step in range(3):
        swav.zero_grad()
        out = swav.training_step(multicrop_views(seed=step))
        loss, logs = out["loss"], out["logs"]
        loss.backward()
        frozen = step < 2
        assert logs["prototypes_frozen"] == float(frozen)
        assert (swav.prototypes.weight.grad.abs().sum() == 0) == frozen, step
        assert all(p.grad is not None for p in swav.projector.parameters())
        swav.after_optimizer_step(step / 10)
    assert swav.state_dict()["steps"].item() == 3  # checkpointed: a resumed run stays unfrozen


def test_queue_holds_global_projections_and_joins_the_sinkhorn_once_full():
    swav = make_swav(queue_size=16, queue_start=0.1)
    swav.eval()
    first = multicrop_views(seed=1)
    swav.training_step(first)
    swav.after_optimizer_step(0.05)  # before queue_start: nothing queued
    assert swav.queued.item() == 0
    swav.training_step(first)
    z = F.normalize(swav.projector(forward_multicrop(swav.backbone, first)), dim=1).chunk(len(first))
    swav.after_optimizer_step(0.1)
    assert swav.queued.item() == 8 and not swav.queue_full
    assert torch.allclose(swav.queues[0].features[:8], z[0], atol=1e-6)
    assert torch.allclose(swav.queues[1].features[:8], z[1], atol=1e-6)
    logs = swav.training_step(multicrop_views(seed=2))["logs"]
    assert logs["queue_used"] == 0.0
    swav.after_optimizer_step(0.2)
    assert swav.queue_full and "queues.0.features" in swav.state_dict()

    views = multicrop_views(seed=3)
    queued = [q.features.clone() for q in swav.queues]
    out = swav.training_step(views)
    loss, logs = out["loss"], out["logs"]
    assert logs["queue_used"] == 1.0
    z = F.normalize(swav.projector(forward_multicrop(swav.backbone, views)), dim=1)
    prototypes = swav.prototypes.weight
    scores = (z @ prototypes.T).chunk(len(views))
    codes = [sinkhorn(torch.cat([queued[s] @ prototypes.T, scores[s]]), 0.05, 3)[-8:] for s in range(2)]
    assert torch.allclose(loss, swav_loss(scores, codes, 0.1), atol=1e-5)
    without_queue = [sinkhorn(scores[s], 0.05, 3) for s in range(2)]
    assert not torch.allclose(loss, swav_loss(scores, without_queue, 0.1), atol=1e-4)


def test_multicrop_forward_batches_views_of_one_size_together():
    calls = []

    def network(x):
        calls.append(tuple(x.shape))
        return x.mean(dim=(1, 2, 3))[:, None]

    views = [torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4), torch.randn(2, 1, 2, 2), torch.randn(2, 1, 2, 2)]
    out = forward_multicrop(network, views)
    assert calls == [(4, 1, 4, 4), (4, 1, 2, 2)]
    assert torch.allclose(out[:, 0], torch.cat([v.mean(dim=(1, 2, 3)) for v in views]))
