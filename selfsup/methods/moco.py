"""MoCo v2: Chen, Fan, Girshick, He. "Improved Baselines with Momentum Contrastive
Learning", 2020, on MoCo (He, Fan, Wu, Xie, Girshick. "Momentum Contrast for Unsupervised
Visual Representation Learning", CVPR 2020).

A query encoder f_q (backbone + MLP head: Linear-ReLU-Linear, 128-d output) embeds view 1;
a key encoder f_k, a momentum copy of f_q that gets no gradient, embeds view 2. The other
samples of the contrast are a FIFO queue K of keys from earlier batches:

    L = -log exp(q.k+/tau) / (exp(q.k+/tau) + sum_{k- in K} exp(q.k-/tau)),   tau = 0.2
    after the optimizer step:  theta_k <- m theta_k + (1 - m) theta_q,  enqueue k, dequeue oldest

(algorithm 1 of the MoCo paper; q, k L2-normalised). MoCo's "shuffling BN" (sec. 3.3)
keeps BatchNorm from leaking which key belongs to a query: keys and queries are normalised
with statistics of different sub-batches. In one process we run the encoders on
``bn_splits`` chunks, as the MoCo CIFAR demo does, queries in batch order and keys
interleaved across the chunks (the batch order is already random, so no extra random draw
is needed). The paper uses a 65536 queue, m = 0.999 and SGD (lr 0.03 x B/256, weight
decay 1e-4, cosine decay, no warm-up) and its augmentation (the ``mocov2`` recipe: crop
0.2-1, jitter 0.4/0.4/0.4/0.1, blur above 32 px); for small datasets and short runs we
default to a 4096 queue and m = 0.99 (both as in the MoCo CIFAR demo).

``symmetric=True`` is the demo's symmetric loss (its ``--symmetric``): each view is a query
against the other's key, L = L(q1, k2) + L(q2, k1) (a sum, as the demo), and both keys are
enqueued (2B per step). The demo notes it costs twice the compute of the asymmetric loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.losses import gather, info_nce
from selfsup.methods.base import Method, OptimizerDefaults, step_output
from selfsup.methods.ema import ema_update, frozen_copy
from selfsup.methods.queue import FeatureQueue
from selfsup.methods.registry import register


def forward_in_chunks(network: nn.Module, x: torch.Tensor, chunks: int, interleave: bool = False):
    """``network`` run on ``chunks`` sub-batches, each with its own BatchNorm statistics.
    With ``interleave`` sample i goes to sub-batch i % chunks; outputs keep the input order."""
    if chunks <= 1:
        return network(x)
    if not interleave:
        return torch.cat([network(part) for part in x.tensor_split(chunks)])
    order = torch.argsort(torch.arange(len(x), device=x.device) % chunks, stable=True)
    out = torch.cat([network(part) for part in x[order].tensor_split(chunks)])
    return out[torch.argsort(order)]


@register
class MoCo(Method):
    name = "moco"
    paper = "Chen et al., Improved Baselines with Momentum Contrastive Learning (MoCo v2)"
    year = 2020
    recipe = "mocov2"
    needs = "2 views + EMA key encoder + queue"
    optimizer = OptimizerDefaults("sgd", lr=0.03, weight_decay=1e-4)
    # Not the MoCo authors' CIFAR-10 demo (colab/moco_cifar10_demo.ipynb: weight decay 5e-4,
    # tau = 0.1, crops down to 0.08) on small images: with MoCo v2's MLP head it scored 0.407
    # against 0.427 for MoCo v2's setting (CIFAR-10, 20 epochs, seed 0; BENCHMARKS.md, parity)
    warmup_fraction = 0.0  # the paper's schedule has no warm-up

    def __init__(self, backbone: nn.Module, projection_dim: int = 128, hidden_dim: int = 2048,
                 queue_size: int = 4096, temperature: float = 0.2, base_momentum: float = 0.99,
                 bn_splits: int = 8, symmetric: bool = False, gather_distributed: bool = False):
        super().__init__(backbone)
        self.projector = nn.Sequential(nn.Linear(backbone.dim, hidden_dim), nn.ReLU(inplace=True),
                                       nn.Linear(hidden_dim, projection_dim))
        self.key_backbone = frozen_copy(backbone)
        self.key_projector = frozen_copy(self.projector)
        self.queue = FeatureQueue(queue_size, projection_dim)
        self.temperature = temperature
        self.base_momentum = self.momentum = base_momentum  # constant, as in the paper
        self.bn_splits = bn_splits
        self.symmetric = symmetric
        self.gather_distributed = gather_distributed
        self.pending_keys: torch.Tensor | None = None

    def training_step(self, views):
        x_query, x_key = views
        chunks = max(1, min(self.bn_splits, len(x_query) // 2))  # at least 2 samples per BatchNorm
        if not self.symmetric:
            h, q = self.query(x_query, chunks)  # the key view meets only the key encoder
            k = self.key(x_key, chunks)
            loss, keys, paired = info_nce(q, k, self.queue.features, self.temperature), k, None
        else:
            (h, q1), (paired, q2) = self.query(x_query, chunks), self.query(x_key, chunks)
            k1, k2 = self.key(x_query, chunks), self.key(x_key, chunks)
            loss = (info_nce(q1, k2, self.queue.features, self.temperature)
                    + info_nce(q2, k1, self.queue.features, self.temperature))
            keys = torch.cat([k1, k2])
        self.pending_keys = keys  # enqueued after the optimizer step, as in the paper's algorithm 1
        return step_output(loss, h, {"momentum": self.momentum}, paired=paired)

    def query(self, x: torch.Tensor, chunks: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(backbone features, projection) of the query encoder."""
        h = forward_in_chunks(self.backbone, x, chunks)
        return h, self.projector(h)

    @torch.no_grad()
    def key(self, x: torch.Tensor, chunks: int) -> torch.Tensor:
        """L2-normalised keys, BatchNorm sub-batches interleaved against the queries' (shuffling BN)."""
        return F.normalize(self.key_projector(forward_in_chunks(self.key_backbone, x, chunks, interleave=True)),
                           dim=1)

    def after_optimizer_step(self, progress: float) -> None:
        ema_update(self.backbone, self.key_backbone, self.momentum)
        ema_update(self.projector, self.key_projector, self.momentum)
        if self.pending_keys is not None:
            keys = gather(self.pending_keys) if self.gather_distributed else self.pending_keys
            self.queue.push(keys)
            self.pending_keys = None
