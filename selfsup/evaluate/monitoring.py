"""Label-free monitoring during training, and the collapse alarm.

The monitors read what the training steps already computed: every step returns the
backbone's embeddings of its first view (and of the second view of the same samples, where
the step embeds two with the backbone; ``selfsup.methods.base.StepOutput``). The rows of the
last steps of each epoch, at least ``samples`` of them, give RankMe, uniformity and the
normalised per-dimension std, and the pairs give the alignment of two views; they are logged
(metrics.jsonl, progress bar) at the end of the epoch. No image is embedded twice for them:
they are the training views, augmented, through the backbone in training mode, as Lightly's
and solo-learn's batch-level monitors see them. Methods whose step has no second view
through the same backbone (MoCo v2's key view meets only the key encoder; RotNet, MAE,
I-JEPA and masked series reconstruction see one) log no alignment.

A collapsed representation (RankMe under ``rank_floor``, or std under ``std_fraction`` of
the 1/sqrt(D) a spread embedding has) raises a warning; with ``stop_on_collapse`` training
stops and the collapsed state is not checkpointed, so ``last`` stays the last good one.
With several processes each keeps its slices of the same last steps, and the rows are
gathered, so every process measures what one process would.
"""

from __future__ import annotations

import math
import warnings
from collections import deque

import lightning as L
import torch

from selfsup.evaluate.monitors import label_free_monitors


class CollapseWarning(UserWarning):
    """The representation has collapsed (RankMe or embedding std at its floor)."""


def gather_rows(part: torch.Tensor) -> torch.Tensor:
    """Every process's rows (any number each), in rank order, on the CPU."""
    import torch.distributed as dist

    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    world = dist.get_world_size()
    sizes = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([len(part)], device=device))
    sizes = [int(n) for n in sizes]
    padded = torch.zeros((max(sizes), *part.shape[1:]), dtype=part.dtype, device=device)
    padded[:len(part)] = part
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:n] for p, n in zip(parts, sizes)]).cpu()


def is_collapsed(monitors: dict, dim: int, rank_floor: float = 2.0, std_fraction: float = 0.05) -> bool:
    return monitors["rankme"] < rank_floor or monitors["embedding_std"] < std_fraction / math.sqrt(dim)


class RepresentationMonitor(L.Callback):
    """``samples``: rows the monitors read at each epoch's end (whole steps, the last ones)."""

    def __init__(self, samples: int = 1024, stop_on_collapse: bool = False):
        self.samples = samples
        self.stop_on_collapse = stop_on_collapse
        self.collapsed_at: int | None = None
        self.steps: deque = deque()  # (embeddings, paired or None) of this process's last steps

    def record(self, out: dict, global_batch: int) -> None:
        """Keep one step's rows; drop the oldest steps beyond ``samples`` rows of global batches."""
        paired = out.get("paired")
        self.steps.append((out["embeddings"].float().cpu(), None if paired is None else paired.float().cpu()))
        while len(self.steps) > max(1, -(-self.samples // global_batch)):
            self.steps.popleft()

    def rows(self, world_size: int = 1) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The kept embeddings and their pairs (None unless every kept step has them)."""
        z = torch.cat([e for e, _ in self.steps])
        paired = None if any(p is None for _, p in self.steps) else torch.cat([p for _, p in self.steps])
        if world_size > 1:
            z = gather_rows(z)
            paired = None if paired is None else gather_rows(paired)
        return z, paired

    def measure(self, z: torch.Tensor, paired: torch.Tensor | None) -> dict:
        return label_free_monitors(z, paired)

    def on_train_epoch_start(self, trainer, pl_module):
        self.steps.clear()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.record(outputs, pl_module.batch_size)

    def on_train_epoch_end(self, trainer, pl_module):
        if not self.steps:
            return
        z, paired = self.rows(trainer.world_size)
        monitors = self.measure(z, paired)
        # every process holds the same gathered rows: nothing to reduce
        pl_module.log("rankme", monitors["rankme"], prog_bar=True, rank_zero_only=True)
        for name in ("uniformity", "embedding_std", "alignment"):
            if name in monitors:
                pl_module.log(name, monitors[name], rank_zero_only=True)
        dim = z.shape[1]
        if is_collapsed(monitors, dim):
            self.collapsed_at = trainer.current_epoch + 1
            action = "stopping (--stop-on-collapse); the last good checkpoint is kept" \
                if self.stop_on_collapse else "pass --stop-on-collapse to stop on this"
            warnings.warn(f"representation collapse after epoch {self.collapsed_at}: RankMe "
                          f"{monitors['rankme']:.2f}, normalised std {monitors['embedding_std']:.2e} "
                          f"(spread: {1 / math.sqrt(dim):.2e}); {action}", CollapseWarning, stacklevel=2)
            if self.stop_on_collapse:
                trainer.should_stop = True
