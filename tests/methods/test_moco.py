import inspect

import torch
import torch.nn.functional as F

from selfsup import backbones, methods
from selfsup.losses import info_nce
from selfsup.methods.moco import forward_in_chunks
from selfsup.methods.queue import FeatureQueue


def make_moco(**options):
    torch.manual_seed(0)
    options = {"hidden_dim": 32, "projection_dim": 8, "queue_size": 12, **options}
    return methods.create("moco", backbones.create("smallcnn"), **options)


def views(n=8):
    return [torch.randn(n, 3, 16, 16), torch.randn(n, 3, 16, 16)]


def test_training_step_runs_and_reaches_backbone():
    torch.manual_seed(0)
    moco = methods.create("moco", backbones.create("smallcnn"))
    out = moco.training_step(views())
    loss, logs = out["loss"], out["logs"]
    assert torch.isfinite(loss) and logs["momentum"] == 0.99
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in moco.backbone.parameters())
    assert moco.queue.features.shape == (4096, 128)
    assert {"temperature", "base_momentum"} <= set(inspect.signature(type(moco).__init__).parameters)


def test_key_encoder_gets_no_gradient():
    moco = make_moco()
    loss = moco.training_step(views())["loss"]
    loss.backward()
    assert all(p.grad is None for p in moco.key_backbone.parameters())
    assert all(p.grad is None for p in moco.key_projector.parameters())
    assert all(p.grad is not None for p in moco.projector.parameters())


def test_loss_contrasts_the_query_with_its_key_and_the_queue():
    moco = make_moco()
    moco.eval()
    xq, xk = views()
    queue_before = moco.queue.features.clone()
    loss = moco.training_step([xq, xk])["loss"]
    q = moco.projector(moco.backbone(xq))
    k = moco.key_projector(moco.key_backbone(xk))
    assert torch.allclose(loss, info_nce(q, k, queue_before, 0.2), atol=1e-5)


def test_queue_is_fifo_of_keys_not_queries_and_wraps():
    moco = make_moco(base_momentum=0.5)
    moco.eval()  # BatchNorm on running statistics, so keys can be recomputed outside the step
    with torch.no_grad():  # make the query encoder differ from the key encoder
        for p in moco.backbone.parameters():
            p.add_(0.1 * torch.randn_like(p))
    first = views()
    moco.training_step(first)
    keys_1 = F.normalize(moco.key_projector(moco.key_backbone(first[1])), dim=1)
    queries_1 = F.normalize(moco.projector(moco.backbone(first[0])), dim=1)
    keys_of_query_view = F.normalize(moco.key_projector(moco.key_backbone(first[0])), dim=1)
    initial = moco.queue.features.clone()
    moco.after_optimizer_step(0.0)
    assert torch.allclose(moco.queue.features[:8], keys_1, atol=1e-6)
    assert not torch.allclose(moco.queue.features[:8], queries_1, atol=1e-3)
    assert not torch.allclose(moco.queue.features[:8], keys_of_query_view, atol=1e-3)
    assert torch.equal(moco.queue.features[8:], initial[8:])
    assert moco.queue.pointer.item() == 8

    second = views()
    moco.training_step(second)
    keys_2 = F.normalize(moco.key_projector(moco.key_backbone(second[1])), dim=1)
    moco.after_optimizer_step(0.1)
    # 12 slots: the second batch fills 8..11 then wraps to 0..3; 4..7 still hold batch one
    assert torch.allclose(moco.queue.features[8:], keys_2[:4], atol=1e-6)
    assert torch.allclose(moco.queue.features[:4], keys_2[4:], atol=1e-6)
    assert torch.allclose(moco.queue.features[4:8], keys_1[4:], atol=1e-6)
    assert moco.queue.pointer.item() == 4


def test_queue_is_checkpointed():
    moco = make_moco()
    moco.training_step(views())
    moco.after_optimizer_step(0.0)
    state = moco.state_dict()
    assert "queue.features" in state and state["queue.pointer"].item() == 8
    restored = make_moco()
    restored.load_state_dict(state)
    assert torch.equal(restored.queue.features, moco.queue.features)
    assert restored.queue.pointer.item() == 8


def test_feature_queue_keeps_the_newest_when_pushed_more_than_its_size():
    queue = FeatureQueue(4, 2)
    queue.push(torch.arange(12.0).reshape(6, 2))
    assert torch.equal(queue.features, torch.arange(4.0, 12.0).reshape(4, 2))
    assert queue.pointer.item() == 0


def test_momentum_update_of_the_key_encoder():
    moco = make_moco(base_momentum=0.9)
    with torch.no_grad():
        for p in moco.backbone.parameters():
            p.add_(torch.randn_like(p))
    online = [p.clone() for p in moco.backbone.parameters()]
    keys = [p.clone() for p in moco.key_backbone.parameters()]
    moco.after_optimizer_step(0.5)  # MoCo v2's momentum is constant
    for o, k, new in zip(online, keys, moco.key_backbone.parameters()):
        assert torch.allclose(new, 0.9 * k + 0.1 * o, atol=1e-6)


def test_shuffled_batchnorm_chunks():
    torch.manual_seed(0)
    norm = torch.nn.BatchNorm1d(3)
    x = torch.randn(8, 3)
    contiguous = forward_in_chunks(norm, x, 2)
    assert torch.allclose(contiguous[:4], norm(x[:4]), atol=1e-6)
    interleaved = forward_in_chunks(norm, x, 2, interleave=True)
    assert torch.allclose(interleaved[0::2], norm(x[0::2]), atol=1e-6)
    assert torch.allclose(interleaved[1::2], norm(x[1::2]), atol=1e-6)
    norm.eval()  # with running statistics the chunking changes nothing
    assert torch.allclose(forward_in_chunks(norm, x, 4, interleave=True), norm(x), atol=1e-6)


def test_symmetric_loss_is_the_demos_sum_and_enqueues_both_keys():
    """The MoCo CIFAR demo's ``symmetric``: L(q1, k2) + L(q2, k1), keys [k1, k2] enqueued."""
    moco = make_moco(symmetric=True, queue_size=32)
    moco.eval()
    x1, x2 = views()
    queue_before = moco.queue.features.clone()
    out = moco.training_step([x1, x2])
    q1, q2 = (moco.projector(moco.backbone(x)) for x in (x1, x2))
    k1, k2 = (F.normalize(moco.key_projector(moco.key_backbone(x)), dim=1) for x in (x1, x2))
    expected = info_nce(q1, k2, queue_before, 0.2) + info_nce(q2, k1, queue_before, 0.2)
    assert torch.allclose(out["loss"], expected, atol=1e-5)
    assert not torch.allclose(out["loss"], info_nce(q1, k2, queue_before, 0.2), atol=1e-3)
    assert out["paired"].shape == out["embeddings"].shape
    moco.after_optimizer_step(0.0)
    assert torch.allclose(moco.queue.features[:16], torch.cat([k1, k2]), atol=1e-6)
    assert moco.queue.pointer.item() == 16
