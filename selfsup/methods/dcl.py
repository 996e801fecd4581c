"""DCL and DCLW: Yeh, Hong, Hsu, Liu, Chen, LeCun. "Decoupled Contrastive Learning",
ECCV 2022.

SimCLR (backbone + projection MLP, two views) with NT-Xent's positive pair removed from
the denominator, which decouples the gradient of the positive from the negatives' and
makes the loss less dependent on large batches. With s = cos similarity:

    L_DC(i)  = -s(z_i, z_i')/tau + log sum_{k not in {i, i'}} exp(s(z_i, z_k)/tau)
    L_DCW(i) = -w_i s(z_i, z_i')/tau + log sum_{k not in {i, i'}} exp(s(z_i, z_k)/tau)
    w_i = 2 - exp(s(z_i, z_i')/sigma) / mean_j exp(s(z_j, z_j')/sigma),   sigma = 0.5

The paper keeps SimCLR's setup (LARS, lr 0.3 x B/256, weight decay 1e-6, SimCLR's
augmentations) with tau = 0.1; on CIFAR-sized images we keep SimCLR's there too (its
authors' CIFAR-10 optimizer: LARS, lr 1.0 x B/256, weight decay 1e-4; inherited, not a
setting read in DCL's own code).
"""

from __future__ import annotations

from torch import nn

from selfsup.losses import dcl_loss, dclw_loss
from selfsup.methods.registry import register
from selfsup.methods.simclr import SimCLR


@register
class DCL(SimCLR):
    """SimCLR's views, backbone and projector; only the loss differs."""

    name = "dcl"
    paper = "Yeh et al., Decoupled Contrastive Learning"
    year = 2022

    def __init__(self, backbone: nn.Module, projection_dim: int = 128, hidden_dim: int | None = None,
                 temperature: float = 0.1, gather_distributed: bool = False):
        super().__init__(backbone, projection_dim, hidden_dim, temperature, gather_distributed)

    def loss(self, z1, z2):
        return dcl_loss(z1, z2, self.temperature, self.gather_distributed)


@register
class DCLW(DCL):
    """DCL with the positive pair weighted by how far apart its views still are."""

    name = "dclw"

    def __init__(self, backbone: nn.Module, projection_dim: int = 128, hidden_dim: int | None = None,
                 temperature: float = 0.1, sigma: float = 0.5, gather_distributed: bool = False):
        super().__init__(backbone, projection_dim, hidden_dim, temperature, gather_distributed)
        self.sigma = sigma

    def loss(self, z1, z2):
        return dclw_loss(z1, z2, self.temperature, self.sigma, self.gather_distributed)
