"""Test-time adaptation to a shifted, unlabelled distribution with TENT (Wang et al. 2021,
"Tent: Fully Test-Time Adaptation by Entropy Minimization").

TENT keeps every weight fixed except the BatchNorm scales and shifts (gamma, beta),
normalises with the statistics of each test batch instead of the training ones, and
minimises the entropy of the predictions batch by batch, online:

    min_{gamma, beta}  H(y_hat) = -sum_c p(c | x) log p(c | x)

Also reported: "test-time BN" (batch statistics, no update), which separates what the
statistics alone bring from what the entropy updates add.

``corrupt`` makes shifted copies of a test set in the spirit of CIFAR-10-C (Hendrycks &
Dietterich 2019): Gaussian noise, Gaussian blur and contrast reduction at 5 severities.
Tables and time series take the noise corruption, with the same standard deviations in
units of each feature's (channel's) standard deviation.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from selfsup.augment import ops
from selfsup.config import ConfigError
from selfsup.tasks.common import open_sized_source, seeded
from selfsup.data.samples import as_unit, per_channel
from selfsup.devices import CPU, Placement
from selfsup.tasks.finetune import classifier_placement, load_classifier, predict

# per severity 1..5; noise std and contrast factor as in CIFAR-10-C, blur sigma in pixels of 32 px images
NOISE_STD = (0.08, 0.12, 0.18, 0.26, 0.38)
BLUR_SIGMA = (0.5, 0.75, 1.0, 1.5, 2.0)
CONTRAST = (0.75, 0.5, 0.4, 0.3, 0.15)
CORRUPTIONS = ("noise", "blur", "contrast")


def corrupt(images: torch.Tensor, kind: str, severity: int = 3, seed: int = 0, std=None) -> torch.Tensor:
    """A corrupted copy of uint8 images (N, 3, H, W), uint8; or of float tables (N, F) or
    series (N, C, T) (noise only, scaled by ``std``, one value per feature or channel)."""
    if kind not in CORRUPTIONS:
        raise ConfigError(f"corruption={kind!r}: expected one of {', '.join(CORRUPTIONS)}")
    if not 1 <= severity <= 5:
        raise ConfigError(f"severity={severity}: expected 1 to 5")
    if images.dtype != torch.uint8:
        if kind != "noise":
            raise ConfigError(f"corruption={kind!r}: only noise applies to tables and time series")
        scale = 1.0 if std is None else per_channel(std, images)
        return images + NOISE_STD[severity - 1] * scale * torch.randn(images.shape, generator=seeded(seed))
    x, n, level = as_unit(images), len(images), severity - 1
    if kind == "noise":
        x = x + NOISE_STD[level] * torch.randn(x.shape, generator=seeded(seed))
    elif kind == "blur":  # kernel spans 30% of the side, so that sigma 2 px is not truncated at 32 px
        sigma = BLUR_SIGMA[level] * images.shape[-1] / 32
        x = ops.gaussian_blur(x, seeded(seed), p=1.0, sigma=(sigma, sigma), kernel_fraction=0.3)
    else:  # contrast: blend with the mean luma, the same transform as colour jitter
        ones = torch.ones(n)
        matrix, offset = ops.color_transform(ones, torch.full((n,), CONTRAST[level]), ones, torch.zeros(n),
                                             torch.zeros(n, dtype=torch.bool))
        x = ops.apply_color(x, matrix, offset)
    return x.clamp_(0, 1).mul_(255).round_().to(torch.uint8)


def norm_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def configure_tent(model: nn.Module) -> list[nn.Parameter]:
    """Batch statistics in every BatchNorm, gradients for their affine parameters only."""
    norms = norm_layers(model)
    if not norms:
        raise ConfigError("the classifier has no BatchNorm layers; TENT adapts only those")
    model.train()
    model.requires_grad_(False)
    parameters = []
    for m in norms:
        m.track_running_stats, m.running_mean, m.running_var = False, None, None
        if m.affine:
            m.weight.requires_grad_(True)
            m.bias.requires_grad_(True)
            parameters += [m.weight, m.bias]
    return parameters


def entropy(logits: torch.Tensor) -> torch.Tensor:
    log_p = logits.log_softmax(dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


def tent(model: nn.Module, images: torch.Tensor, lr: float = 1e-3, batch_size: int = 128,
         epochs: int = 1, seed: int = 0, placement: Placement = CPU) -> torch.Tensor:
    """Adapt a copy of ``model`` online on raw ``images`` of any modality (batches in a fixed random order),
    on ``placement``; returns the predictions made during the last pass, in the images' order."""
    adapted = copy.deepcopy(model).to(placement.device)
    optimizer = torch.optim.Adam(configure_tent(adapted), lr=lr, betas=(0.9, 0.999))
    predictions = torch.empty(len(images), dtype=torch.long)
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=seeded(seed))
        for rows in order.split(batch_size):
            with placement.autocast():
                logits = adapted(as_unit(images[rows].to(placement.device))).float()
            loss = entropy(logits).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            predictions[rows] = logits.argmax(dim=1).detach().cpu()
    return predictions


@torch.no_grad()
def batch_norm_predict(model: nn.Module, images: torch.Tensor, batch_size: int = 128, seed: int = 0,
                       placement: Placement = CPU):
    """Predictions with test-batch statistics and no update (test-time BN)."""
    adapted = copy.deepcopy(model).to(placement.device)
    configure_tent(adapted)
    predictions = torch.empty(len(images), dtype=torch.long)
    for rows in torch.randperm(len(images), generator=seeded(seed)).split(batch_size):
        with placement.autocast():
            predictions[rows] = adapted(as_unit(images[rows].to(placement.device))).argmax(dim=1).cpu()
    return predictions


def adapt(classifier_dir, data: str, corruption: str | None = None, severity: int = 3, lr: float = 1e-3,
          batch_size: int = 128, epochs: int = 1, seed: int = 0, accelerator: str | None = None,
          devices: str | None = None) -> dict:
    """TENT-adapt a classifier written by ``selfsup finetune`` to ``data`` (optionally
    corrupted here first). Returns the predictions (ids and class names) and, when the
    data is labelled, accuracy without adaptation, with test-time BN, and with TENT. Runs on
    ``accelerator``/``devices`` (default: the pretraining run's where available, else CPU)."""
    model, meta = load_classifier(classifier_dir)
    where = classifier_placement(meta, accelerator, devices)  # one device: TENT's batches are its updates
    source = open_sized_source(data, meta["image_size"], meta.get("label_column"), meta.get("modality", "image"),
                               meta.get("input_shape"))
    images = source.samples
    if corruption is not None:
        images = corrupt(images, corruption, severity, seed, meta["std"])
    adapted = tent(model, images, lr, batch_size, epochs, seed, where)
    result = {"samples": len(images), "corruption": corruption, "severity": severity if corruption else None,
              "ids": list(source.ids), "predictions": [meta["classes"][i] for i in adapted.tolist()]}
    if source.labels is not None and (source.classes or []) == meta["classes"]:
        labels = source.labels
        result["accuracy_source_model"] = float((predict(model, images, placement=where) == labels).float().mean())
        result["accuracy_test_time_bn"] = float((batch_norm_predict(model, images, batch_size, seed, where)
                                                 == labels).float().mean())
        result["accuracy_tent"] = float((adapted == labels).float().mean())
    return result
