"""What every method shares: a backbone, ``training_step(views) -> StepOutput``,
``embed(x)`` (also ``method(x)``), a hook after each optimizer step, and the paper's
optimizer defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import torch
from torch import nn


@dataclass(frozen=True)
class OptimizerDefaults:
    """The paper's optimizer; ``lr`` is per 256 samples (scaled linearly with batch size)."""

    name: str
    lr: float
    weight_decay: float


class StepOutput(TypedDict, total=False):
    """What a training step returns. ``loss`` is what the optimizer minimises;
    ``embeddings`` the backbone's (B, D) output for the first view as the step computed it
    (no extra forward pass; detached), which the label-free monitors read; ``paired`` the
    same samples' second view through the same backbone, where the step has one (for
    alignment); ``logs`` scalars for metrics.jsonl."""

    loss: torch.Tensor
    embeddings: torch.Tensor
    paired: torch.Tensor
    logs: dict[str, float]


def step_output(loss: torch.Tensor, embeddings: torch.Tensor, logs: dict | None = None,
                paired: torch.Tensor | None = None) -> StepOutput:
    out = StepOutput(loss=loss, embeddings=embeddings.detach(), logs=logs or {})
    if paired is not None:
        out["paired"] = paired.detach()
    return out


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

    def training_step(self, views: list[torch.Tensor]) -> StepOutput:
        raise NotImplementedError

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The representation used downstream: the backbone's output, before any head.
        Every embedding after training comes from here (``selfsup.evaluate.protocols.
        embed_images`` calls the method), so a method whose representation differs
        overrides this one function."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``method(x)`` is ``method.embed(x)``: a method is, to the code after training, its
        encoder (and so it can be wrapped for several devices)."""
        return self.embed(x)

    def after_optimizer_step(self, progress: float) -> None:
        """Called after optimizer step k of K with ``progress = k / K`` (k counts from 0)."""
