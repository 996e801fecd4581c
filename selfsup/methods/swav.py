"""SwAV: Caron, Misra, Mairal, Goyal, Bojanowski, Joulin. "Unsupervised Learning of Visual
Features by Contrasting Cluster Assignments", NeurIPS 2020.

Every view x_t (2 global and N local crops, sec. 3.2) is embedded, projected (MLP) and
L2-normalised to z_t, and scored against K prototypes C, unit vectors kept normalised
after every step. For each global view s, Sinkhorn-Knopp (eps 0.05, 3 iterations, no
gradient) turns the batch's scores into codes q_s that spread the batch evenly over the
prototypes; every other view must predict them (swapped prediction, eq. 1-3):

    L = 1/2 sum_{s in {1, 2}} 1/(V - 1) sum_{t != s} - sum_k q_s^k log softmax_k(z_t . C / tau)

with tau = 0.1. The prototypes get a zero gradient during the first ``freeze_prototypes``
steps (the paper: its first epoch; weight decay then only scales them, which the
renormalisation undoes). With small batches a queue of the global views' past projections
joins the batch in the Sinkhorn (not in the loss), as in the paper's batch-256 setting
(3840 entries, filled from epoch 15 of 100, used once full). With ``gather_distributed``
the Sinkhorn sums run over all processes, the queue holds every process's projections and
each process brings every world_size-th entry of it.

The paper trains with LARS (lr 4.8 at batch 4096, weight decay 1e-6; its batch-256
setting uses lr 0.6), a 2048-wide projector with 128-d output and 3000 prototypes. For
small data we default to 512 prototypes, 10 frozen steps and no queue.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from selfsup.heads import MLP, Prototypes
from selfsup.losses import gather, sinkhorn, swav_loss
from selfsup.losses.distributed import is_distributed, rank
from selfsup.methods.base import Method, OptimizerDefaults, step_output
from selfsup.methods.multicrop import forward_multicrop
from selfsup.methods.queue import FeatureQueue
from selfsup.methods.registry import register


@register
class SwAV(Method):
    name = "swav"
    paper = "Caron et al., Unsupervised Learning of Visual Features by Contrasting Cluster Assignments"
    year = 2020
    recipe = "swav"
    needs = "multi-crop (+ queue)"
    optimizer = OptimizerDefaults("lars", lr=0.6, weight_decay=1e-6)

    def __init__(self, backbone: nn.Module, projection_dim: int = 128, hidden_dim: int = 2048,
                 num_prototypes: int = 512, temperature: float = 0.1, epsilon: float = 0.05,
                 sinkhorn_iterations: int = 3, freeze_prototypes: int = 10, queue_size: int = 0,
                 queue_start: float = 0.15, gather_distributed: bool = False):
        super().__init__(backbone)
        self.projector = MLP(backbone.dim, hidden_dim, projection_dim)
        self.prototypes = Prototypes(projection_dim, num_prototypes)
        self.temperature, self.epsilon, self.sinkhorn_iterations = temperature, epsilon, sinkhorn_iterations
        self.freeze_prototypes = freeze_prototypes
        self.queue_start, self.gather_distributed = queue_start, gather_distributed
        # one queue per global view, as in the paper's code; empty ModuleList when off
        queues = [FeatureQueue(queue_size, projection_dim) for _ in range(2)] if queue_size > 0 else []
        self.queues = nn.ModuleList(queues)
        # buffers, so a resumed run knows how far it is: optimizer steps taken, entries queued
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("queued", torch.zeros((), dtype=torch.long))
        self.pending: list[torch.Tensor] = []

    @property
    def prototypes_frozen(self) -> bool:
        return int(self.steps) < self.freeze_prototypes

    @property
    def queue_full(self) -> bool:
        return len(self.queues) > 0 and int(self.queued) >= self.queues[0].size

    def codes(self, scores: torch.Tensor, view: int) -> torch.Tensor:
        """Sinkhorn codes of one global view's (B, K) scores, with the queue when it is full."""
        batch = len(scores)
        if self.queue_full:
            queued = self.queues[view].features
            if self.gather_distributed and is_distributed():  # every process holds the whole queue
                queued = queued[rank()::dist.get_world_size()]  # and brings its share of it
            queued = queued @ self.prototypes.weight.detach().T
            scores = torch.cat([queued.to(scores.dtype), scores])
        return sinkhorn(scores, self.epsilon, self.sinkhorn_iterations, self.gather_distributed)[-batch:]

    def training_step(self, views):
        self.prototypes.normalize_()  # C stays on the unit sphere
        features = forward_multicrop(self.backbone, views)
        z = F.normalize(self.projector(features), dim=1)
        scores = self.prototypes.scores(z, frozen=self.prototypes_frozen).chunk(len(views))
        codes = [self.codes(scores[s].detach(), s) for s in range(2)]
        loss = swav_loss(scores, codes, self.temperature)
        self.pending = [part.detach() for part in z.chunk(len(views))[:2]] if len(self.queues) else []
        logs = {"prototypes_frozen": float(self.prototypes_frozen), "queue_used": float(self.queue_full)}
        first, second = features.split([len(v) for v in views])[:2]
        return step_output(loss, first, logs, paired=second)

    def after_optimizer_step(self, progress: float) -> None:
        self.steps += 1
        if self.pending and progress >= self.queue_start:
            for queue, projections in zip(self.queues, self.pending):
                projections = gather(projections) if self.gather_distributed else projections
                queue.push(projections)  # the same on every process, as DDP expects of buffers
            self.queued += len(projections)
        self.pending = []
