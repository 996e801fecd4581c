"""Optimizers and the learning-rate schedule used by the papers.

LARS: You, Gitman, Ginsburg. "Large Batch Training of Convolutional Networks", 2017. SGD
with momentum where each weight matrix's step is scaled by the trust ratio
eta * ||w|| / ||g + wd * w||. As in SimCLR and BYOL, biases and normalisation parameters
(1-d tensors) get neither weight decay nor the trust ratio.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LARS(torch.optim.Optimizer):
    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 eta: float = 0.001, adapt: bool = True):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      eta=eta, adapt=adapt))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = p.grad
                if group["adapt"]:
                    update = update.add(p, alpha=group["weight_decay"])
                    w_norm, u_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(update)
                    trust = torch.where((w_norm > 0) & (u_norm > 0),
                                        group["eta"] * w_norm / u_norm, torch.ones_like(w_norm))
                    update = update.mul(trust)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.clone(update).detach()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(update)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss


def parameter_groups(model: nn.Module, weight_decay: float, lars: bool, fixed_lr=()):
    """Weight matrices/kernels (decayed, adapted) and 1-d parameters (neither), each group
    marked ``decayed`` (a weight-decay schedule acts on it) and ``fixed_lr`` (the lr
    schedule leaves it alone). The parameters in ``fixed_lr`` get groups of their own,
    after the two scheduled ones (which are always there, so group 0 is a scheduled one)."""
    fixed = {id(p) for p in fixed_lr}
    extra = {"adapt": False} if lars else {}
    groups = []
    for constant in (False, True):
        decay, no_decay = [], []
        for p in model.parameters():
            if p.requires_grad and (id(p) in fixed) == constant:
                (no_decay if p.ndim <= 1 else decay).append(p)
        if constant and not decay + no_decay:
            break
        groups += [{"params": decay, "weight_decay": weight_decay, "decayed": True, "fixed_lr": constant},
                   {"params": no_decay, "weight_decay": 0.0, "decayed": False, "fixed_lr": constant, **extra}]
    return groups


def create_optimizer(name: str, model: nn.Module, lr: float, weight_decay: float):
    """``model``'s parameter groups (a method's ``fixed_lr_parameters`` apart) under ``name``."""
    fixed = model.fixed_lr_parameters() if hasattr(model, "fixed_lr_parameters") else ()
    groups = parameter_groups(model, weight_decay, lars=name == "lars", fixed_lr=fixed)
    if name == "lars":
        return LARS(groups, lr=lr, momentum=0.9)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    raise ValueError(f"unknown optimizer {name!r}; available: lars, sgd, adamw")


OPTIMIZERS = ("lars", "sgd", "adamw")


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """Multiplier of the base lr: linear warm-up from ~0 to 1, then cosine decay to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def cosine_schedule(start: float, end: float, progress: float) -> float:
    """From ``start`` at progress 0 to ``end`` at progress 1 along a half cosine (DINO's
    weight decay: ``utils.cosine_scheduler``)."""
    return end + (start - end) * (1 + math.cos(math.pi * min(1.0, progress))) / 2
