"""W-MSE: Ermolov, Siarohin, Sangineto, Sebe. "Whitening for Self-Supervised Representation
Learning", ICML 2021.

The backbone's representation h goes through a projection MLP (Linear 1024-BN-ReLU-Linear
to a 64-d embedding z). Each view's embeddings are whitened within random sub-batches of
128 (Cholesky: z -> L^-1 (z - mu) with L L^T the sub-batch covariance), which scatters the
batch over the unit sphere, and the positives' whitened, L2-normalised embeddings are
pulled together with the MSE (see ``selfsup.losses.wmse``). There is no predictor, no
momentum encoder and no negatives; the whitening alone prevents collapse.

The paper uses d = 2 or 4 positives per image (W-MSE 2 / W-MSE 4) with SimCLR-style
augmentations (crop area 0.2-1 in its code, our default), Adam with weight decay 1e-6, and a 64-d
embedding whitened in sub-batches of 128. The split into sub-batches is drawn from
(seed, step) so a resumed run and a run split over processes whiten the same groups.
"""

from __future__ import annotations

import torch
from torch import nn

from selfsup.heads import MLP
from selfsup.losses.wmse import wmse_loss
from selfsup.methods.base import Method, OptimizerDefaults, step_output
from selfsup.methods.masking import step_generator
from selfsup.methods.registry import register


@register
class WMSE(Method):
    name = "wmse"
    paper = "Ermolov et al., Whitening for Self-Supervised Representation Learning"
    year = 2021
    recipe = "simclr"
    crop_min_scale = 0.2  # the paper's code; SimCLR's recipe crops down to 0.08
    needs = "2 views, batch > 64 (whitening)"
    optimizer = OptimizerDefaults("adamw", lr=2e-3, weight_decay=1e-6)

    def __init__(self, backbone: nn.Module, projection_dim: int = 64, hidden_dim: int = 1024,
                 whiten_size: int = 128, iterations: int = 1, eps: float = 0.0,
                 gather_distributed: bool = False, seed: int | None = None):
        super().__init__(backbone)
        self.projector = MLP(backbone.dim, hidden_dim, projection_dim)
        self.whiten_size, self.iterations, self.eps = whiten_size, iterations, eps
        self.min_batch_size = projection_dim + 1
        self.gather_distributed = gather_distributed
        # the sub-batch split comes from (seed, step), saved with the weights (as MAE's masks)
        seed = int(torch.randint(2**62, ())) if seed is None else seed
        self.register_buffer("split_seed", torch.tensor(seed))
        self.register_buffer("split_step", torch.tensor(0))

    def training_step(self, views):
        features = [self.backbone(v) for v in views]
        embeddings = [self.projector(h) for h in features]
        generator = step_generator(int(self.split_seed), int(self.split_step))
        self.split_step += 1
        loss = wmse_loss(embeddings, self.whiten_size, generator, self.iterations, self.eps,
                         self.gather_distributed)
        return step_output(loss, features[0], paired=features[1])
