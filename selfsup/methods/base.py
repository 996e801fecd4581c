"""What every method shares: a backbone, ``training_step(views) -> StepOutput``,
``embed(x)`` (also ``method(x)``), hooks before and after each optimizer step, and the
paper's training settings: optimizer, warm-up, crop (``paper_settings``), parameters whose
learning rate stays fixed, and a weight-decay schedule."""

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
    # what the paper or its authors' code sets otherwise for CIFAR-sized images (32 px or
    # less): any of ``optimizer`` (an OptimizerDefaults), ``crop_min_scale`` and ``options``
    # (method options' defaults); empty: one setting for every size
    small_image_settings: dict = {}
    warmup_fraction: float = 0.1  # the paper's linear lr warm-up, as a fraction of the epochs (0: none)
    lr_schedule: str = "cosine"  # after the warm-up: "cosine" decay to 0, or "constant" (the base lr throughout)

    @classmethod
    def paper_settings(cls, backbone: str, small_images: bool = False) -> dict:
        """The paper's ``optimizer``, ``warmup_fraction``, ``crop_min_scale`` and method
        ``options`` (defaults that differ from the constructor's) for a run on backbone
        ``backbone`` (a name), on CIFAR-sized images when ``small_images``
        (``small_image_settings``); a method whose paper has one setting per kind of backbone
        (MoCo v3: ResNet or ViT) overrides this."""
        settings = dict(optimizer=cls.optimizer, warmup_fraction=cls.warmup_fraction,
                        crop_min_scale=cls.crop_min_scale, options={})
        return {**settings, **cls.small_image_settings} if small_images else settings

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

    def fixed_lr_parameters(self) -> list[nn.Parameter]:
        """Parameters whose learning rate the schedule leaves at its base value (no warm-up,
        no decay), such as SimSiam's predictor with ``fix_predictor_lr``."""
        return []

    def weight_decay_at(self, progress: float, weight_decay: float) -> float:
        """The weight decay of the decayed parameters at ``progress`` (0 to 1) of training,
        for a run whose weight decay is ``weight_decay``: constant unless the paper
        schedules it (DINO)."""
        return weight_decay

    def before_optimizer_step(self, progress: float, epoch: int) -> None:
        """Called after the backward pass of step k of K (``progress = k / K``, in epoch
        ``epoch`` counting from 0), before the optimizer uses the gradients: the place to
        clip or drop them."""

    def after_optimizer_step(self, progress: float) -> None:
        """Called after optimizer step k of K with ``progress = k / K`` (k counts from 0)."""
