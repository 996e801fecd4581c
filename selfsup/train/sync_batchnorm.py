"""BatchNorm over the global batch of a data-parallel run, on any device and precision.

On CUDA, torch's ``SyncBatchNorm`` computes the statistics of the whole batch across
processes (``convert_batchnorm(..., "cuda")`` uses it). DDP refuses it on CPU, and the
fused kernels it is built from (``batch_norm_stats``, ``batch_norm_backward_elemt``) exist
only for CUDA, so there ``GlobalBatchNorm`` does the same computation from the CPU's fused
BatchNorm kernels: a run of N CPU processes (gloo) normalises as one process does on the
concatenated batch.

Forward: each process's mean and biased variance (one fused pass, float32 whatever the
input dtype, as torch's BatchNorm keeps them), all-gathered with the sample counts and
combined as sum n_i (v_i + (m_i - m)^2) / N, which does not cancel for large means as
E[x^2] - E[x]^2 does; then the fused normalisation with the global statistics.
Backward: the fused BatchNorm backward with the global statistics gives the local
gradient and the local sums of dy and dy * x_hat; those two sums are all-reduced and the
difference between the global and the local means of the gradient is added back, an
affine map of x_hat per channel (again one fused kernel):

    dx = w / sigma * (dy - mean(dy) - x_hat * mean(dy * x_hat)),  means over the global batch.

Measured on 2 CPU processes (SimCLR, small CNN, bf16): the forward and backward of the
network with this layer took 120 + 245 ms a step when it was written with elementwise
tensor ops and autograd, 50 + 150 ms with the fused kernels (BatchNorm without
synchronisation: 38 + 138 ms).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from selfsup.losses.distributed import is_distributed


_GROUP: dict = {}


def _statistics_group():
    """A process group of every rank for the statistics alone: DDP queues its gradient
    all-reduces on the default group during the backward pass, and a collective there
    would wait behind them."""
    key = dist.get_world_size()
    if key not in _GROUP:  # every rank reaches its first BatchNorm layer together
        _GROUP[key] = dist.new_group(backend=dist.get_backend())
    return _GROUP[key]


def _gathered(t: torch.Tensor) -> torch.Tensor:
    """(world size, *t.shape): ``t`` of every rank, in rank order. For a few hundred numbers
    gloo's all_gather took 0.4 ms where its all_reduce took 1.1-1.8 ms (2 CPU processes)."""
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t, group=_statistics_group())
    return torch.stack(parts)


class _GlobalBatchNormFunction(torch.autograd.Function):
    """(x, weight, bias) -> (normalised x, global mean, unbiased global variance)."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        channels = x.shape[1]
        ones = torch.ones(channels, device=x.device)
        weight = ones if weight is None else weight
        bias = torch.zeros_like(ones) if bias is None else bias
        # momentum 0 leaves the scratch buffers as they are; the stats come back in float32
        mean, var = torch.batch_norm_update_stats(x, torch.zeros_like(ones), ones.clone(), 0.0)
        count = x.numel() // channels
        stats = _gathered(torch.cat([mean.new_tensor([count]), mean, var]).double())
        counts, means, variances = stats[:, :1], stats[:, 1:channels + 1], stats[:, channels + 1:]
        total = counts.sum()
        global_mean = (counts * means).sum(0) / total
        global_var = (counts * (variances + (means - global_mean) ** 2)).sum(0) / total
        global_mean, global_var = global_mean.float(), global_var.float()
        out = torch.native_batch_norm(x, weight, bias, global_mean, global_var, False, 0.0, eps)[0]
        ctx.save_for_backward(x, weight, global_mean, global_var)
        ctx.eps, ctx.count, ctx.total = eps, count, float(total)
        unbiased = global_var * (ctx.total / max(ctx.total - 1, 1))
        ctx.mark_non_differentiable(global_mean, unbiased)
        return out, global_mean, unbiased

    @staticmethod
    def backward(ctx, grad_out, _mean, _var):
        x, weight, mean, var = ctx.saved_tensors
        invstd = (var + ctx.eps).rsqrt()
        grad_local, grad_weight, grad_bias = torch.ops.aten.native_batch_norm_backward(
            grad_out, x, weight, None, None, mean, invstd, True, ctx.eps, [True, True, True])
        sums = _gathered(torch.cat([grad_bias, grad_weight])).sum(0)  # sum(dy), sum(dy * x_hat)
        channels = x.shape[1]
        scale = weight * invstd
        shift_weight = scale * (grad_weight / ctx.count - sums[channels:] / ctx.total)
        shift_bias = scale * (grad_bias / ctx.count - sums[:channels] / ctx.total)
        grad_x = grad_local + torch.native_batch_norm(x, shift_weight, shift_bias, mean, var, False, 0.0,
                                                      ctx.eps)[0]
        # each process returns its part of the weight and bias gradients; DDP averages them
        wants = ctx.needs_input_grad
        return grad_x, grad_weight if wants[1] else None, grad_bias if wants[2] else None, None


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {x.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        out, mean, var = _GlobalBatchNormFunction.apply(x, self.weight, self.bias, self.eps)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
                self.running_var.lerp_(var.to(self.running_var.dtype), momentum)
        return out


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
