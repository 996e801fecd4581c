"""Few-label classification from a pretrained run: a linear head on the frozen backbone or
full fine-tuning, optionally with FixMatch self-training on the unlabelled rest. Works on
every modality: images, tables and time series.

FixMatch (Sohn et al. 2020, "FixMatch: Simplifying Semi-Supervised Learning with
Consistency and Confidence"): for each unlabelled image u, the prediction on a weak view
(crop + flip) becomes a hard pseudo-label when it is confident, and the model is trained
to predict it from a strong view (here the SimCLR recipe of the data's modality):

    L = L_s + lambda_u * 1/(mu B) sum_b 1[max q_b >= tau] * H(argmax q_b, p(y | strong(u_b)))

with q_b = p(y | weak(u_b)) (no gradient), tau = 0.95, lambda_u = 1, mu = 7 unlabelled per
labelled sample. The same labels with no pretraining ("from scratch") are the baseline.
Weak views of tables add light Gaussian noise; weak views of series take a long window
with a little scaling and jitter; their strong views are the contrastive views of
``selfsup.modalities``.

After training, BatchNorm running statistics are recomputed on the clean training
images (as PreciseBN, Wu & Johnson 2021): the backbone's running averages were
collected on augmented views (pretraining, or here), so they do not match clean inputs;
test-time adaptation (``selfsup.tasks.adapt``) starts from these statistics.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from selfsup import backbones, modalities
from selfsup.atomic import atomic_path, check_output, write_text
from selfsup.config import ConfigError
from selfsup.data import DataError, holdout_split
from selfsup.data.samples import as_unit, standardize
from selfsup.devices import CPU, Placement, placement
from selfsup.progress import bar
from selfsup.tasks.common import check_count, open_run_source, seeded

MODES = ("linear", "full")


class Classifier(nn.Module):
    """Backbone + linear head for samples as ``as_unit`` gives them (images in [0, 1],
    table and series values as they are), standardised inside with the run's statistics.
    The head standardises the embedding first (BatchNorm without affine parameters, as
    MAE's linear probe), so one learning rate suits any backbone's feature scale."""

    def __init__(self, backbone: nn.Module, num_classes: int, mean, std):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.BatchNorm1d(backbone.dim, affine=False), nn.Linear(backbone.dim, num_classes))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(standardize(x, self.mean, self.std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: a batch as ``as_unit`` gives it, e.g. (B, 3, H, W) floats in [0, 1]."""
        return self.head(self.embed(x))


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, samples: torch.Tensor, inputs=None, batch_size: int = 256,
                        placement: Placement = CPU) -> None:
    """Replace every BatchNorm's running mean/var in ``model`` by the exact average over
    raw ``samples`` (any modality) (passed through ``inputs`` first when given, e.g. a frozen
    embedder), in batches on ``placement`` (where ``model`` is)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    was_training = model.training
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
        m.train()
    for start in range(0, len(samples), batch_size):
        x = as_unit(samples[start:start + batch_size].to(placement.device))
        with placement.autocast():
            model(x if inputs is None else inputs(x))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)


def train_classifier(model: Classifier, samples: torch.Tensor, labels: torch.Tensor, mode: str = "linear",
                     unlabeled: torch.Tensor | None = None, steps: int = 300, batch_size: int = 64,
                     lr: float | None = None, threshold: float = 0.95, unlabeled_ratio: int = 7,
                     unlabeled_weight: float = 1.0, seed: int = 0, modality: str = "image",
                     placement: Placement = CPU) -> dict:
    """Train ``model`` on raw samples ``samples`` (uint8 samples, float tables or series) with
    ``labels``; with ``unlabeled`` samples, FixMatch. ``linear``: only the head learns, the
    backbone stays in eval mode. ``modality``: whose FixMatch views to use. ``placement``: the
    device the model moves to and trains on (batches go there), and its autocast."""
    if mode not in MODES:
        raise ConfigError(f"mode={mode!r}: expected one of {', '.join(MODES)}")
    torch.manual_seed(seed)
    generator = seeded(seed)
    device = placement.device
    model.to(device)
    labels = labels.to(device)
    weak, strong = modalities.get(modality).fixmatch_views(samples.shape[-1], model.mean.tolist(), model.std.tolist())
    linear = mode == "linear"
    for p in model.backbone.parameters():
        p.requires_grad_(not linear)
    everything = samples if unlabeled is None else torch.cat([samples, unlabeled])
    if linear:  # the frozen backbone's statistics on clean training samples, as the head will see them
        recompute_batchnorm(model.backbone, everything, placement=placement)

    def logits_of(x):
        with placement.autocast():
            if not linear:
                return model(x).float()
            with torch.no_grad():  # no graph through the frozen backbone
                features = model.embed(x)
            return model.head(features).float()
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=lr or (1e-2 if linear else 1e-3), weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: math.cos(7 * math.pi * s / (16 * steps)))
    scaler = torch.amp.GradScaler(device.type, enabled=placement.dtype == torch.float16)
    batch = min(batch_size, len(samples))
    stats = {"pseudo_labelled": 0.0}
    for step in bar(range(steps), desc="fine-tuning", unit="step"):
        model.train()
        if linear:
            model.backbone.eval()
        rows = torch.randint(len(samples), (batch,), generator=generator)
        x = weak(samples[rows].to(device), generator)
        if unlabeled is None:
            loss = F.cross_entropy(logits_of(x), labels[rows])
        else:
            u = unlabeled[torch.randint(len(unlabeled), (batch * unlabeled_ratio,), generator=generator)].to(device)
            u_weak, u_strong = weak(u, generator), strong(u, generator)
            logits = logits_of(torch.cat([x, u_weak, u_strong]))  # one batch, as FixMatch, for BatchNorm
            logits_x, logits_weak, logits_strong = logits.split([len(x), len(u), len(u)])
            confidence, pseudo = logits_weak.detach().softmax(dim=1).max(dim=1)
            mask = (confidence >= threshold).float()
            unsupervised = (F.cross_entropy(logits_strong, pseudo, reduction="none") * mask).mean()
            loss = F.cross_entropy(logits_x, labels[rows]) + unlabeled_weight * unsupervised
            stats["pseudo_labelled"] = float(mask.mean())
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        schedule.step()
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    if not linear:  # the running averages were collected on augmented views
        recompute_batchnorm(model.backbone, everything, placement=placement)
    recompute_batchnorm(model.head, everything, model.embed, placement=placement)
    stats["final_loss"] = loss.item()
    return stats


@torch.no_grad()
def predict(model: nn.Module, samples: torch.Tensor, batch_size: int = 512, placement: Placement = CPU) -> torch.Tensor:
    """Class indices of raw ``samples``, in batches on ``placement`` (the model is moved there)."""
    model.eval()
    runner = placement.parallel(model)
    predictions = []
    for s in range(0, len(samples), batch_size):
        with placement.autocast():
            predictions.append(runner(as_unit(samples[s:s + batch_size].to(placement.device))).argmax(dim=1).cpu())
    return torch.cat(predictions)


def label_count(labels) -> int | None:
    """``labels`` as a count of labelled samples per class, or None when it names a label
    file (which must exist); a ``ConfigError`` for anything else."""
    if isinstance(labels, (int, np.integer)) and not isinstance(labels, bool):
        return int(labels)
    text = str(labels).strip()
    if text.lstrip("+-").isdigit():
        return int(text)
    if not Path(text).is_file():
        raise ConfigError(f"labels={labels!r}: expected a count of labelled samples per class or an id,label "
                          f"file{'' if not Path(text).exists() else ' (this is a folder)'}")
    return None


def labelled_subset(labels: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``per_class`` random samples of every class."""
    if per_class < 1:
        raise ConfigError(f"labels={per_class}: expected at least 1 labelled sample per class")
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise ConfigError(f"labels={per_class}: class {c} has only {len(members)} training samples")
        picked.append(rng.choice(members, per_class, replace=False))
    return np.sort(np.concatenate(picked))


def read_label_file(path: Path, ids: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(row indices, class indices, class names) from a CSV/TSV file of ``id,label`` lines."""
    lookup = {sample_id: i for i, sample_id in enumerate(ids)}
    rows, names, seen = [], [], {}
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        parts = [p.strip() for p in line.replace("\t", ",").split(",")]
        if not line.strip() or (number == 1 and parts[0] == "id"):
            continue
        if len(parts) != 2 or parts[0] not in lookup:
            raise DataError(f"{path}:{number}: expected 'id,label' with an id of the data, got {line!r}")
        row = lookup[parts[0]]
        if row in seen:
            raise DataError(f"{path}:{number}: id {parts[0]!r} is labelled twice (first on line {seen[row]})")
        seen[row] = number
        rows.append(row)
        names.append(parts[1])
    classes = sorted(set(names))
    if len(classes) < 2:
        raise DataError(f"{path}: needs labels of at least 2 classes, got {classes}")
    return np.array(rows), np.array([classes.index(n) for n in names]), classes


def save_classifier(model: Classifier, out: Path, meta: dict) -> None:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "classifier.safetensors") as temporary:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(temporary))
    write_text(out / "classifier.json", json.dumps(meta, indent=2) + "\n")


def load_classifier(path: str | os.PathLike) -> tuple[Classifier, dict]:
    """A classifier written by ``finetune``: (model in eval mode, its metadata)."""
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / "classifier.json").is_file():
        raise ConfigError(f"{path}: not a classifier directory (no classifier.json; write one with "
                          f"`selfsup finetune`)")
    meta = json.loads((path / "classifier.json").read_text())
    backbone = backbones.create(meta["backbone"], small_stem=meta["small_stem"], image_size=meta["image_size"],
                                input_shape=meta.get("input_shape"), options=meta.get("backbone_options"))
    model = Classifier(backbone, len(meta["classes"]), meta["mean"], meta["std"])
    model.load_state_dict(load_file(str(path / "classifier.safetensors")))
    return model.eval(), meta


def classifier_placement(meta: dict, accelerator: str | None = None, devices: str | None = None) -> Placement:
    """Where a saved classifier runs: ``accelerator``/``devices``, default the device and
    precision its pretraining run used where this machine has it, else the CPU; one device."""
    return placement(accelerator, devices, trained_on=meta.get("accelerator", "cpu"),
                     trained_precision=meta.get("precision", "32-true"), modality=meta.get("modality", "image")).single()


def finetune(run_dir, labels, data: str | None = None, mode: str = "linear", pseudo_label: bool = False,
             steps: int = 300, scratch: bool = False, seed: int = 0, out=None, accelerator: str | None = None,
             devices: str | None = None, **training) -> dict:
    """Train a classifier from the run's backbone with few labels and report its accuracy
    on the data's fixed 20% holdout. ``labels``: an int (that many labelled samples per
    class drawn from the data's own labels, the rest of the training part unlabelled) or
    a CSV file of ``id,label`` lines. ``scratch``: also train the same network from
    random weights (full fine-tuning, labels only) for comparison. ``out``: write the
    classifier (``classifier.safetensors`` + ``classifier.json``) there. ``training``:
    further options of ``train_classifier`` (batch_size, lr, threshold, unlabeled_ratio).
    Trains on ``accelerator``/``devices`` (default: the run's device and precision where this
    machine has it, else the CPU)."""
    from selfsup.runs import Run

    per_class = label_count(labels)
    check_count("steps", steps, 0, at_most=10_000_000)
    if out is not None:
        check_output(out, "folder")
    run = Run(run_dir)
    config, method, where = run.config, run.method(), run.placement(accelerator, devices).single()
    source = open_run_source(data or config.data, config)
    train, test = holdout_split(source, 0.2, seed=0)
    if per_class is not None:
        if train.labels is None:
            raise DataError(f"{source.name}: has no labels; pass --labels as an id,label file")
        picked = labelled_subset(train.labels.numpy(), per_class, seed)
        targets, classes = train.labels[picked], source.classes or [str(c) for c in range(int(train.labels.max()) + 1)]
    else:
        picked, targets, classes = read_label_file(Path(labels), train.ids)
        targets = torch.as_tensor(targets)
    unlabeled = np.setdiff1d(np.arange(len(train)), picked)
    samples = train.samples[picked]
    result = {"mode": mode, "pseudo_label": pseudo_label, "labelled": len(picked), "steps": steps}
    model = Classifier(method.backbone, len(classes), config.mean, config.std)
    result["train"] = train_classifier(model, samples, targets, mode, train.samples[unlabeled] if pseudo_label else None,
                                       steps, seed=seed, modality=source.modality, placement=where, **training)
    if test is not None and test.labels is not None and source.classes == classes:
        result["test_accuracy"] = float((predict(model, test.samples, placement=where) == test.labels).float().mean())
        if scratch:
            fresh = Classifier(run.method(weights=False).backbone, len(classes), config.mean, config.std)
            scratch_options = {k: v for k, v in training.items() if k in ("batch_size", "lr")}
            train_classifier(fresh, samples, targets, "full", None, steps, seed=seed, modality=source.modality,
                             placement=where, **scratch_options)
            result["scratch_test_accuracy"] = float((predict(fresh, test.samples, placement=where)
                                                     == test.labels).float().mean())
    if out is not None:
        save_classifier(model, Path(out), {
            "run": str(run_dir), "data": data or config.data, "classes": list(classes),
            "backbone": config.backbone, "small_stem": config.small_stem, "backbone_options": config.backbone_options,
            "image_size": config.image_size,
            "modality": source.modality, "input_shape": config.input_shape, "label_column": config.label_column,
            "accelerator": config.accelerator, "precision": config.precision,
            "mean": list(config.mean), "std": list(config.std), **{k: v for k, v in result.items() if k != "train"}})
    return result
