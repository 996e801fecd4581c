"""Test-time adaptation to a shifted, unlabelled distribution with TENT (Wang et al. 2021,
"Tent: Fully Test-Time Adaptation by Entropy Minimization").

TENT keeps every weight fixed except the BatchNorm scales and shifts (gamma, beta),
normalises with the statistics of each test batch instead of the training ones, and
minimises the entropy of the predictions batch by batch, online:

    min_{gamma, beta}  H(y_hat) = -sum_c p(c | x) log p(c | x)

Also reported: "test-time BN" (batch statistics, no update), which separates what the
statistics alone bring from what the entropy updates add.

``--corrupt`` makes a shifted copy of the data first with its modality's corruptions
(``selfsup.modalities``, in the spirit of CIFAR-10-C): noise, blur and contrast for images,
noise in units of each feature's (channel's) std for tables and series.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from selfsup import modalities
from selfsup.config import ConfigError
from selfsup.progress import bar
from selfsup.tasks.common import check_count, open_sized_source, seeded
from selfsup.data.samples import as_unit
from selfsup.devices import CPU, Placement
from selfsup.tasks.finetune import classifier_placement, load_classifier, predict

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
    for _ in bar(range(epochs), desc="adapting (TENT)", unit="epoch"):
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
    check_count("severity", severity, 0, at_least=1, at_most=5)
    check_count("epochs", epochs, 0, at_most=100_000)
    check_count("batch_size", batch_size, 0, at_most=1 << 20)
    if not (lr > 0 and math.isfinite(lr)):
        raise ConfigError(f"lr={lr}: expected a finite number > 0")
    model, meta = load_classifier(classifier_dir)
    where = classifier_placement(meta, accelerator, devices)
    source = open_sized_source(data, meta["image_size"], meta.get("label_column"), meta.get("modality", "image"),
                               meta.get("input_shape"))
    images = source.samples
    if corruption is not None:
        images = modalities.get(source.modality).corrupt(images, corruption, severity, seed, meta["std"])
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
