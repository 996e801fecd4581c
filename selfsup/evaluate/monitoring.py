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
from selfsup.augment.ops import SliceDraws
from selfsup.devices import Placement
from selfsup.evaluate.protocols import embed_images


class CollapseWarning(UserWarning):
    """The representation has collapsed (RankMe or embedding std at its floor)."""


def gather_rows(part: torch.Tensor, chunk: int, total: int) -> torch.Tensor:
    """The rows every process holds (at most ``chunk`` each, in rank order), ``total`` in all."""
    import torch.distributed as dist

    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    padded = torch.zeros((chunk, *part.shape[1:]), dtype=part.dtype, device=device)
    padded[:len(part)] = part
    parts = [torch.empty_like(padded) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, padded)
    return torch.cat(parts)[:total].cpu()


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
    def measure(self, backbone: torch.nn.Module, device, rank: int = 0, world_size: int = 1) -> dict:
        """The monitors of ``backbone`` on the buffer. With several processes each embeds its
        slice of the buffer (views drawn as one process draws them) and the slices are
        gathered, so every process gets the numbers one process would, for 1/N of the work."""
        n = len(self.images)
        chunk = -(-n // world_size)
        start, stop = min(n, rank * chunk), min(n, (rank + 1) * chunk)
        kept = stop - start
        if kept == 0:  # more processes than buffer rows: this one measures a row it then drops
            start, stop = 0, 1
        mine = self.images[start:stop]
        where = Placement(torch.device(device), self.dtype)

        def draws(seed):
            generator = torch.Generator().manual_seed(seed)
            return SliceDraws(generator, n, start) if world_size > 1 else generator
        z = embed_images(backbone, mine, self.mean, self.std, placement=where)
        images = mine.to(device)
        views = self.recipe(images, draws(self.seed), self.mean, self.std)
        if len(views) < 2:  # one-view recipes (RotNet, MAE): a second, independent augmentation
            views += self.recipe(images, draws(self.seed + 1), self.mean, self.std)
        was_training = backbone.training
        backbone.eval()
        try:
            with where.autocast():
                z1, z2 = (backbone(v).float().cpu() for v in views[:2])
        finally:
            backbone.train(was_training)
        if world_size > 1:
            z, z1, z2 = (gather_rows(part[:kept], chunk, n) for part in (z, z1, z2))
        monitors = label_free_monitors(z)
        monitors["alignment"] = alignment(z1, z2)
        return monitors

    def on_train_epoch_end(self, trainer, pl_module):
        backbone = pl_module.method.backbone
        monitors = self.measure(backbone, pl_module.device, trainer.global_rank, trainer.world_size)
        # every process holds the same gathered numbers: nothing to reduce
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
