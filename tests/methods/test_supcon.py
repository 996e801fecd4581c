import numpy as np
import pytest
import torch

from selfsup import augment, backbones, methods
from selfsup.config import ConfigError, PretrainConfig
from selfsup.losses import supcon_loss
from selfsup.tasks import pretrain
from selfsup.train.module import PretrainModule


def test_supcon_step_is_supcon_loss_of_projections():
    torch.manual_seed(0)
    supcon = methods.create("supcon", backbones.create("smallcnn"))
    supcon.eval()
    assert supcon.needs_labels and supcon.temperature == 0.1  # the paper's
    assert supcon.base_temperature == 0.07  # the authors' code's
    assert not any(m.needs_labels for m in methods.METHODS.values() if m is not methods.SupCon)
    v1, v2 = torch.randn(6, 3, 16, 16), torch.randn(6, 3, 16, 16)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    loss = supcon.training_step([v1, v2], labels=labels)["loss"]
    z1, z2 = supcon.projector(supcon.backbone(v1)), supcon.projector(supcon.backbone(v2))
    assert torch.allclose(loss, supcon_loss(z1, z2, labels, 0.1, 0.07), atol=1e-6)


def test_module_passes_the_labels_of_the_batch_indices():
    seen = []

    class Recording(methods.SupCon):
        def training_step(self, views, *, labels):
            seen.append(labels)
            return super().training_step(views, labels=labels)

    method = Recording(backbones.create("smallcnn"))
    labels = torch.arange(10) * 10
    module = PretrainModule(method, augment.create("simclr", 16), [0.5] * 3, [0.5] * 3, optimizer="sgd",
                            lr=0.1, weight_decay=0.0, warmup_epochs=0, epochs=1, steps_per_epoch=1, seed=0,
                            batch_size=4, labels=labels)
    module.log = lambda *args, **kwargs: None
    module.trainer = type("T", (), {"world_size": 1, "global_step": 0, "optimizers": [torch.optim.SGD(method.parameters())]})()
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    module.training_step((images, torch.tensor([7, 2, 9, 0])), 0)
    assert seen[0].tolist() == [70, 20, 90, 0]
    with pytest.raises(ValueError, match="needs the training labels"):
        PretrainModule(method, None, [0.5] * 3, [0.5] * 3, optimizer="sgd", lr=0.1, weight_decay=0.0,
                       warmup_epochs=0, epochs=1, steps_per_epoch=1, seed=0, batch_size=4)


def test_pretrain_refuses_unlabelled_data(tmp_path):
    np.save(tmp_path / "images.npy", np.zeros((16, 8, 8, 3), dtype=np.uint8))
    with pytest.raises(ConfigError, match="method=supcon: needs labelled data"):
        pretrain(PretrainConfig(data=str(tmp_path / "images.npy"), method="supcon", epochs=1,
                                out=str(tmp_path / "run")))
