"""SupCon: Khosla, Teterwak, Wang, Sarna, Tian, Isola, Maschinot, Liu, Krishnan.
"Supervised Contrastive Learning", NeurIPS 2020.

Two views (the ``supcon`` recipe: its code's crop 0.2-1 and jitter 0.4/0.4/0.4/0.1 on
CIFAR-sized images, SimCLR's views above), backbone f and projection MLP g, z = g(f(x)),
with labels deciding the positives: every other view of the same class pulls, all other
views push (L_out, averaged over positives outside the log):

    L = tau/tau_base 1/(2N) sum_i -1/|P(i)| sum_{p in P(i)} log exp(z_i.z_p/tau) / sum_{a != i} exp(z_i.z_a/tau)

with tau_base = 0.07, the factor of the authors' code (SupContrast losses.py; eq. 2 has
none). Supervised, so it needs labelled data. The paper uses tau 0.1 and LARS; we keep
SimCLR's learning rate per 256 samples.
"""

from __future__ import annotations

from selfsup.losses import supcon_loss
from selfsup.methods.base import OptimizerDefaults, step_output
from selfsup.methods.registry import register
from selfsup.methods.simclr import SimCLR


@register
class SupCon(SimCLR):
    name = "supcon"
    paper = "Khosla et al., Supervised Contrastive Learning"
    year = 2020
    recipe = "supcon"
    needs = "2 views + labels"
    needs_labels = True
    optimizer = OptimizerDefaults("lars", lr=0.3, weight_decay=1e-6)
    small_image_settings = {}  # not SimCLR's CIFAR-10 setting: one setting for every size

    def __init__(self, backbone, projection_dim: int = 128, hidden_dim: int | None = None,
                 temperature: float = 0.1, base_temperature: float = 0.07,
                 gather_distributed: bool = False):
        super().__init__(backbone, projection_dim, hidden_dim, temperature, gather_distributed)
        self.base_temperature = base_temperature

    def training_step(self, views, *, labels):
        h1, h2 = (self.backbone(v) for v in views)
        z1, z2 = self.projector(h1), self.projector(h2)
        loss = supcon_loss(z1, z2, labels, self.temperature, self.base_temperature,
                           gather_distributed=self.gather_distributed)
        return step_output(loss, h1, paired=h2)
