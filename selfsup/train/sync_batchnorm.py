"""BatchNorm over the global batch of a data-parallel run, on any device and precision.

On CUDA, torch's ``SyncBatchNorm`` computes the statistics of the whole batch across
processes (``convert_batchnorm(..., "cuda")`` uses it). DDP refuses it on CPU, so there
``GlobalBatchNorm`` does the same computation through ``torch.distributed.nn``'s
differentiable all-reduce: a run of N CPU processes (gloo) normalises as one process does
on the concatenated batch.

Statistics are computed and running buffers kept in float32 whatever the input dtype
(under bf16 autocast a convolution hands BatchNorm bf16 activations), as torch's own
BatchNorm does; the variance is the mean squared deviation from the global mean (a second
all-reduce), not E[x^2] - E[x]^2, which cancels catastrophically for large means.
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
        shape = (1, channels) + (1,) * (x.dim() - 2)
        x32 = x.float()
        count = torch.tensor([x.numel() // channels], dtype=torch.float32, device=x.device)
        totals = all_reduce(torch.cat([x32.sum(dims), count]))
        n = totals[-1]
        mean = totals[:channels] / n
        centred = x32 - mean.view(shape)
        var = all_reduce(centred.square().sum(dims)) / n  # biased, as BatchNorm normalises
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
                self.running_var.lerp_((var.detach() * n / (n - 1)).to(self.running_var.dtype), momentum)
        out = centred * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(x.dtype)


def convert_batchnorm(module: nn.Module, device_type: str = "cpu") -> nn.Module:
    """Make every BatchNorm layer of ``module`` normalise with the global batch's statistics:
    torch's ``SyncBatchNorm`` on CUDA, ``GlobalBatchNorm`` elsewhere; same parameters and
    buffers, so checkpoints keep their keys (in place for children; returns the module)."""
    if device_type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        converted = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                    module.track_running_stats)
        converted.load_state_dict(module.state_dict())
        converted.train(module.training)
        converted.requires_grad_(any(p.requires_grad for p in module.parameters()) or not module.affine)
        return converted
    for name, child in module.named_children():
        setattr(module, name, convert_batchnorm(child, device_type))
    return module
