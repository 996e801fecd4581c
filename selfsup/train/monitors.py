"""Label-free monitoring during training, and the collapse alarm.

After every epoch the backbone embeds a fixed buffer of training images (no augmentation)
and two augmented views of it; RankMe, uniformity, the normalised per-dimension std and
the alignment of the two views are logged (metrics.jsonl, progress bar). A collapsed
representation (RankMe under ``rank_floor``, or std under ``std_fraction`` of the
1/sqrt(D) a spread embedding has) raises a warning; with ``stop_on_collapse`` training
stops and the collapsed state is not checkpointed, so ``last`` stays the last good one.
"""

from __future__ import annotations

import math
import warnings

import lightning as L
import torch

from selfsup.evaluate.monitors import alignment, label_free_monitors
from selfsup.devices import Placement
from selfsup.evaluate.protocols import embed_images


class CollapseWarning(UserWarning):
    """The representation has collapsed (RankMe or embedding std at its floor)."""


def is_collapsed(monitors: dict, dim: int, rank_floor: float = 2.0, std_fraction: float = 0.05) -> bool:
    return monitors["rankme"] < rank_floor or monitors["embedding_std"] < std_fraction / math.sqrt(dim)


class RepresentationMonitor(L.Callback):
    def __init__(self, images: torch.Tensor, mean, std, recipe, seed: int, samples: int = 1024,
                 stop_on_collapse: bool = False, dtype: torch.dtype | None = None):
        self.images = images[:samples]
        self.mean, self.std, self.recipe, self.seed = mean, std, recipe, seed
        self.stop_on_collapse = stop_on_collapse
        self.dtype = dtype  # autocast of the monitors' forward passes (None: float32)
        self.collapsed_at: int | None = None

    @torch.no_grad()
    def measure(self, backbone: torch.nn.Module, device) -> dict:
        where = Placement(torch.device(device), self.dtype)
        z = embed_images(backbone, self.images, self.mean, self.std, placement=where)
        images = self.images.to(device)
        views = self.recipe(images, torch.Generator().manual_seed(self.seed), self.mean, self.std)
        if len(views) < 2:  # one-view recipes (RotNet, MAE): a second, independent augmentation
            views += self.recipe(images, torch.Generator().manual_seed(self.seed + 1), self.mean, self.std)
        was_training = backbone.training
        backbone.eval()
        try:
            with where.autocast():
                z1, z2 = (backbone(v).float().cpu() for v in views[:2])
        finally:
            backbone.train(was_training)
        monitors = label_free_monitors(z)
        monitors["alignment"] = alignment(z1, z2)
        return monitors

    def on_train_epoch_end(self, trainer, pl_module):
        backbone = pl_module.method.backbone
        monitors = self.measure(backbone, pl_module.device)
        # every process measures the same buffer with the same weights: nothing to reduce
        pl_module.log("rankme", monitors["rankme"], prog_bar=True, rank_zero_only=True)
        for name in ("uniformity", "embedding_std", "alignment"):
            pl_module.log(name, monitors[name], rank_zero_only=True)
        dim = backbone.dim if hasattr(backbone, "dim") else 1
        if is_collapsed(monitors, dim):
            self.collapsed_at = trainer.current_epoch + 1
            action = "stopping (--stop-on-collapse); the last good checkpoint is kept" \
                if self.stop_on_collapse else "pass --stop-on-collapse to stop on this"
            warnings.warn(f"representation collapse after epoch {self.collapsed_at}: RankMe "
                          f"{monitors['rankme']:.2f}, normalised std {monitors['embedding_std']:.2e} "
                          f"(spread: {1 / math.sqrt(dim):.2e}); {action}", CollapseWarning, stacklevel=2)
            if self.stop_on_collapse:
                trainer.should_stop = True
