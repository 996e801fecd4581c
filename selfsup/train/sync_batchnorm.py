"""BatchNorm over the global batch of a data-parallel run, on any device.

torch's ``SyncBatchNorm`` computes the statistics of the whole batch across processes,
but only on GPUs (DDP refuses it on CPU). This is the same computation through
``torch.distributed.nn``'s differentiable all-reduce, so a run of N CPU processes (gloo)
normalises exactly as one process does on the concatenated batch.
"""

from __future__ import annotations

import torch
from torch import nn

from selfsup.losses.distributed import is_distributed


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {x.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        channels = x.shape[1]
        dims = [0, *range(2, x.dim())]
        count = torch.tensor([x.numel() // channels], dtype=x.dtype, device=x.device)
        totals = all_reduce(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
        n = totals[-1]
        mean = totals[:channels] / n
        var = totals[channels:2 * channels] / n - mean * mean  # biased, as BatchNorm normalises
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(var.detach() * n / (n - 1), self.momentum)
        shape = (1, channels) + (1,) * (x.dim() - 2)
        out = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm layer of ``module`` by a ``GlobalBatchNorm`` with the same
    parameters and buffers (in place for children; returns the converted module)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        converted = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                    module.track_running_stats)
        converted.load_state_dict(module.state_dict())
        converted.train(module.training)
        converted.requires_grad_(any(p.requires_grad for p in module.parameters()) or not module.affine)
        return converted
    for name, child in module.named_children():
        setattr(module, name, convert_batchnorm(child))
    return module
