import torch
import torch.nn.functional as F

from selfsup import augment, backbones, methods
from selfsup.methods.rotnet import rotations


def test_rotations_and_labels():
    x = torch.randn(3, 2, 5, 5)
    rotated, labels = rotations(x)
    assert rotated.shape == (12, 2, 5, 5) and labels.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    for r in range(4):
        part = rotated[3 * r:3 * r + 3]
        assert torch.equal(torch.rot90(part, -r, dims=(2, 3)), x)  # rotating back recovers it
    assert torch.equal(rotated[:3], x)
    assert torch.equal(rotated[6:9], x.flip(-1).flip(-2))  # 180 degrees
    # 90 degrees counter-clockwise: the top row becomes the left column, read bottom-up
    square = torch.tensor([[1.0, 2.0], [3.0, 4.0]])[None, None]
    assert rotations(square)[0][1, 0].tolist() == [[2.0, 4.0], [1.0, 3.0]]


def test_loss_is_cross_entropy_over_the_four_rotations():
    torch.manual_seed(0)
    rotnet = methods.create("rotnet", backbones.create("smallcnn")).eval()
    x = torch.randn(4, 3, 16, 16)
    out = rotnet.training_step([x])
    loss, logs = out["loss"], out["logs"]
    total = 0.0
    for r in range(4):
        logits = rotnet.classifier(rotnet.backbone(torch.rot90(x, r, dims=(2, 3))))
        total += F.cross_entropy(logits, torch.full((4,), r))
    assert torch.allclose(loss, total / 4, atol=1e-5)
    assert 0 <= logs["rotation_accuracy"] <= 1


def test_training_step_on_recipe_views_reaches_backbone():
    for backbone in (backbones.create("smallcnn"), backbones.create("vit_tiny", image_size=16)):
        torch.manual_seed(0)
        rotnet = methods.create("rotnet", backbone, hidden_dim=32)
        images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
        views = augment.create(rotnet.recipe, 16)(images, torch.Generator().manual_seed(0), [0.5] * 3, [0.25] * 3)
        assert len(views) == 1
        loss = rotnet.training_step(views)["loss"]
        assert torch.isfinite(loss)
        loss.backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in rotnet.backbone.parameters())


def test_defaults_follow_the_paper():
    from selfsup.methods import RotNet
    assert (RotNet.optimizer.name, RotNet.optimizer.lr, RotNet.optimizer.weight_decay) == ("sgd", 0.1, 5e-4)
    assert isinstance(methods.create("rotnet", backbones.create("smallcnn")).classifier, torch.nn.Linear)
