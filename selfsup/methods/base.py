"""What every method shares: a backbone, ``training_step(views) -> (loss, logs)``,
``embed(x)``, a hook after each optimizer step, and the paper's optimizer defaults."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class OptimizerDefaults:
    """The paper's optimizer; ``lr`` is per 256 samples (scaled linearly with batch size)."""

    name: str
    lr: float
    weight_decay: float


class Method(nn.Module):
    name: str = ""
    paper: str = ""
    year: int = 0
    recipe: str = ""
    needs: str = ""  # what training takes, shown by `selfsup methods`: "2 views + EMA target"
    default_backbone: str | None = None  # e.g. a ViT for masked-image methods; else by image size
    needs_labels: bool = False  # supervised methods get ``labels=`` in training_step
    crop_min_scale: float | None = None  # where the paper's crop differs from its recipe's
    min_batch_size: int = 2  # samples a step needs (W-MSE: more than its embedding size)
    optimizer: OptimizerDefaults = OptimizerDefaults("adamw", 1e-3, 0.05)

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def training_step(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The representation used downstream: the backbone's output, before any head."""
        return self.backbone(x)

    def after_optimizer_step(self, progress: float) -> None:
        """Called after optimizer step k of K with ``progress = k / K`` (k counts from 0)."""
