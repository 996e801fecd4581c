"""TS2Vec: Yue, Wang, Duan, Yang, Huang, Tong, Xu. "TS2Vec: Towards Universal Representation
of Time Series", AAAI 2022.

Two contexts of every series: random crops [a1, b1) and [a2, b2) of one batch-wide
overlap length, with a1 <= a2 < b1 <= b2 shifted together by a random offset per series,
so both contain the overlap [a2, b1). The dilated CNN encodes each crop with *timestamp
masking*: the projected input of each step is set to 0 with probability 1/2 (before the
convolutions, so a step is recovered from its neighbours). The per-step representations
of the overlap in both contexts go into the hierarchical contrastive loss
(``selfsup.losses.ts2vec``): instance-wise and temporal InfoNCE at every level of a
max-pooling pyramid over time. The instance representation is the maximum over time of
the per-step features (the backbone's ``pool = "max"``), as the paper's.

As in the reference code (ts2vec.py), the representation used downstream (``embed``) comes
from an average of the encoder's weights over training (``swa``: torch.optim.swa_utils.
AveragedModel, the equal average of the weights after every step, initial ones included),
a part of the method's state, so checkpoints keep it. The encoder is ``dilated_cnn`` at
the reference's sizes (64 wide, 10 blocks, 320-d output, ``selfsup.backbones.timeseries``).
The reference trains with AdamW (weight decay 0.01) at a constant lr 1e-3 (no warm-up, no
decay: ``lr_schedule = "constant"``), batch 8, for 200 optimizer steps (600 when the training
set holds over 100,000 values). Here the lr is per 256 samples, as for every method: the
paper's setting is ``--batch-size 8 --lr 0.032`` (0.032 x 8 / 256 = 1e-3), with ``--epochs``
and ``--max-steps`` for the step count (``benchmarks/timeseries_protocol.py`` runs it).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from selfsup.backbones.timeseries import DilatedCNN
from selfsup.losses.ts2vec import hierarchical_contrastive_loss
from selfsup.methods.base import Method, OptimizerDefaults, step_output
from selfsup.methods.masking import global_rows, step_generator
from selfsup.methods.registry import register


def randint(generator: torch.Generator, low: int, high: int) -> int:
    """One integer uniform in [low, high)."""
    return int(torch.randint(low, high, (), generator=generator))


def context_crops(batch: int, length: int, generator: torch.Generator, min_overlap: int = 2):
    """(offsets (batch,), a1, a2, b1, b2) of TS2Vec's two overlapping crops: crop 1 is
    [offset + a1, offset + b1), crop 2 [offset + a2, offset + b2), the overlap b1 - a2 steps."""
    overlap = randint(generator, min(min_overlap, length), length + 1)
    a2 = randint(generator, 0, length - overlap + 1)
    b1 = a2 + overlap
    a1 = randint(generator, 0, a2 + 1)
    b2 = randint(generator, b1, length + 1)
    start, total = global_rows(batch)  # every process draws the global batch's offsets
    offsets = torch.randint(-a1, length - b2 + 1, (total,), generator=generator)[start:start + batch]
    return offsets, a1, a2, b1, b2


def take_windows(x: torch.Tensor, starts: torch.Tensor, width: int) -> torch.Tensor:
    """(B, C, width) windows of (B, C, T) ``x`` starting at per-series ``starts``."""
    index = starts.to(x.device)[:, None] + torch.arange(width, device=x.device)[None, :]
    return x.gather(2, index[:, None, :].expand(-1, x.shape[1], -1))


@register
class TS2Vec(Method):
    name = "ts2vec"
    paper = "Yue et al., TS2Vec: Towards Universal Representation of Time Series"
    year = 2022
    recipe = "ts2vec"
    needs = "1 view (series), crops + masks"
    default_backbone = "dilated_cnn"
    optimizer = OptimizerDefaults("adamw", lr=1e-3, weight_decay=1e-2)
    warmup_fraction = 0.0  # the reference's lr is constant from the first step
    lr_schedule = "constant"

    def __init__(self, backbone: nn.Module, alpha: float = 0.5, mask_p: float = 0.5, swa: bool = True,
                 gather_distributed: bool = False, seed: int | None = None):
        super().__init__(backbone)
        if not isinstance(backbone, DilatedCNN):
            raise ValueError("ts2vec needs the dilated_cnn backbone (its timestamp masking acts on the "
                             "projected input, before the dilated convolutions)")
        if not 0 <= alpha <= 1 or not 0 <= mask_p < 1:
            raise ValueError(f"alpha={alpha}, mask_p={mask_p}: expected 0 <= alpha <= 1 and 0 <= mask_p < 1")
        backbone.pool = "max"
        self.alpha, self.mask_p, self.gather_distributed = alpha, mask_p, gather_distributed
        # the averaged encoder: its weights and the count of weights averaged are in the state dict
        self.averaged = AveragedModel(backbone).requires_grad_(False) if swa else None
        if self.averaged is not None:
            self.averaged.update_parameters(backbone)  # the initial weights count, as in the reference
        # crops and masks come from (seed, step), both saved with the weights: resume replays them
        seed = int(torch.randint(2**62, ())) if seed is None else seed
        self.register_buffer("crop_seed", torch.tensor(seed))
        self.register_buffer("crop_step", torch.tensor(0))

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The averaged encoder's (B, D) instance representation (the encoder's without ``swa``)."""
        return self.backbone(x) if self.averaged is None else self.averaged.module(x)

    def after_optimizer_step(self, progress: float) -> None:
        if self.averaged is not None:
            self.averaged.update_parameters(self.backbone)

    def encode(self, window: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(B, D, width) features of ``window`` with its timestamp masks and output dropout
        drawn from ``generator``, for the global batch (each process keeps its rows)."""
        start, total = global_rows(len(window))
        rows = slice(start, start + len(window))
        hidden = torch.rand(total, window.shape[-1], generator=generator)[rows] < self.mask_p
        # the (B, D, width) dropout draw is large: made on the window's device, seeded from the step's
        on_device = torch.Generator(window.device).manual_seed(int(torch.randint(2**62, (), generator=generator)))
        kept = torch.rand(total, self.backbone.dim, window.shape[-1], generator=on_device,
                          device=window.device)[rows] >= self.backbone.dropout.p
        return self.backbone.sequence(window, hidden.to(window.device), kept)

    def training_step(self, views):
        x = views[0]
        generator = step_generator(int(self.crop_seed), int(self.crop_step))
        self.crop_step += 1
        offsets, a1, a2, b1, b2 = context_crops(len(x), x.shape[-1], generator)
        overlap = b1 - a2
        crop1 = self.encode(take_windows(x, offsets + a1, b1 - a1), generator)
        crop2 = self.encode(take_windows(x, offsets + a2, b2 - a2), generator)
        z1, z2 = crop1[..., -overlap:], crop2[..., :overlap]
        loss = hierarchical_contrastive_loss(z1.transpose(1, 2), z2.transpose(1, 2), self.alpha,
                                             self.gather_distributed)
        return step_output(loss, self.backbone.pooled(crop1), {"overlap": float(overlap)},
                           paired=self.backbone.pooled(crop2))
