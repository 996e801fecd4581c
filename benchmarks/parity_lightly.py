"""Issue 19: parity with Lightly at equal budget, for the ten methods both libraries have.

    tar xzf ../shared/data/cifar10-jpg.tar.gz -C /tmp/cifar
    PYTHONPATH=$PWD .venv/bin/python benchmarks/parity_lightly.py --data /tmp/cifar/cifar10-jpg \\
        --out runs/parity_lightly.jsonl               # 10 methods x 2 seeds x 2 sides, 20 epochs
    ... --dry-run                                      # 1 epoch, 512 train / 512 test images, seed 0
    ... --estimate-steps 3                             # time a few steps per method and side, estimate the job

Both sides train the same backbone, selfsup's ``smallcnn`` (``backbones.create("smallcnn",
image_size=32)``, built after ``torch.manual_seed(seed)``, so both start from the same
weights), on the same files (a fixed subset of ``--train-size`` CIFAR-10 training JPEGs:
``randperm(50000, seed 0)``, the subset of B4 in ``train_vs_lightly.py``, linked into one
folder that both read), with the same batch size, epochs and seed. Then the same kNN
(k=20, cosine, T=0.07 weighted votes; ``knn_top1`` of ``train_vs_lightly.py``) on the
backbone's embedding (fp32, each side's own input normalisation), the training subset as
the labelled bank, ``--test-size`` CIFAR-10 test images (all 10,000 by default) as queries.

selfsup trains as a user does: ``selfsup.tasks.pretrain(PretrainConfig(data=<subset
folder>, method=NAME, backbone="smallcnn", epochs, batch_size, seed, holdout=0))``, every
other setting its default: the method's paper optimizer, lr x batch/256, warm-up, recipe and
heads (as ``selfsup methods NAME`` lists; each run's JSON line records the resolved
optimizer, lr, weight decay, warm-up, crop scale, precision and method options), batched
augmentation on the training device, channels_last and ``precision auto``; the trained
backbone comes back through ``Run(out).method()``. At 32 px (smallcnn, batch B):

| method | optimizer (lr per 256, wd) | warm-up | recipe | heads (from smallcnn's 256-d) |
|---|---|---|---|---|
| simclr | LARS 1.0, 1e-4 (its authors' CIFAR-10 setting, at 32 px) | 10% | simclr | projector 256-256-128, NT-Xent T=0.5 |
| moco | SGD 0.03, 1e-4 | none | mocov2 | projector 256-2048-128, queue 4096, T=0.2, EMA 0.99 constant, 8 BN chunks |
| byol | LARS 1.0, 1.5e-6 | 10% | byol | projector and predictor 256-1024-256, EMA 0.99 (cosine to 1) |
| simsiam | SGD 0.05, 1e-4, fixed predictor lr | none | mocov2 | projector 256-2048-2048-2048, predictor 2048-512-2048 |
| barlowtwins | LARS 0.2, 1.5e-6 | 10% | byol | projector 256-2048-2048-2048, lambda 0.0051 |
| vicreg | LARS 0.2, 1e-6 | 10% | byol | expander 256-2048-2048-2048, 25/25/1 |
| swav | LARS 0.6, 1e-6 | 10% | swav (2 crops of 32 px + 6 of 14 px) | projector 256-2048-128, 512 prototypes |
| dino | AdamW 5e-4, wd 0.04 to 0.4 | 10% | dino (2 crops of 32 px + 8 of 14 px) | head 256-2048-2048-256-4096, EMA 0.99 (cosine to 1) |
| nnclr | LARS 0.3, 1e-6 | 10% | byol | projector 256-2048-2048-256, predictor 256-2048-256, support 4096, T=0.1 |
| dcl | LARS 1.0, 1e-4 (SimCLR's, at 32 px) | 10% | simclr | projector 256-256-128, T=0.1 |

Lightly (``lightly`` is a benchmark extra, never a dependency) is built from its own
blocks as its documented CIFAR-10 benchmark does (``docs/source/getting_started/benchmarks/
cifar10_benchmark.py``, the one with published CIFAR-10 kNN figures; VICReg, which that
file lacks, from the Imagenette benchmark of the same folder): ``lightly.loss``,
``lightly.models.modules`` heads, ``lightly.models.utils.update_momentum`` /
``batch_shuffle`` / ``deactivate_requires_grad``, ``lightly.transforms`` with 32 px and
blur off (as that file sets for CIFAR-10), ImageNet normalisation,
``torchvision.datasets.ImageFolder`` in ``--workers`` DataLoader workers, a plain loop,
fp32, the cosine schedule stepped per epoch. Only the heads' input size changes (256, the
small CNN's width, where the file has ResNet-18's 512). lr factor = B/128 as in the file:

| method | optimizer | transform | heads, loss |
|---|---|---|---|
| simclr | SGD 0.06 x B/128, m 0.9, wd 5e-4, cosine | SimCLRTransform(cj_strength 0.5) | SimCLRProjectionHead(256, 512, 128), NTXentLoss(0.5) |
| moco | as simclr | SimCLRTransform(cj_strength 0.5) | MoCoProjectionHead(256, 512, 128), NTXentLoss(0.1, memory bank 4096), EMA 0.99, batch shuffle, symmetric, SplitBatchNorm(8) in the backbone (the file's ResNetGenerator(num_splits=8)) |
| byol | as simclr | BYOLTransform (views 1/2) | BYOLProjectionHead(256, 1024, 256), BYOLPredictionHead(256, 1024, 256), EMA 0.99, NegativeCosineSimilarity |
| simsiam | SGD 0.06 (not scaled), m 0.9, wd 5e-4 | SimSiamTransform | ProjectionHead 256-2048-2048 (BN), SimSiamPredictionHead(2048, 512, 2048) |
| barlowtwins | as simclr | BYOLTransform | ProjectionHead 256-2048-2048, BarlowTwinsLoss |
| vicreg | LARS 0.3 x B/256, m 0.9, wd 1e-4, CosineWarmupScheduler (warm-up a tenth of the epochs: the Imagenette file's 20 of 200) | VICRegTransform(cj_strength 0.5) | BarlowTwinsProjectionHead(256, 2048, 2048), VICRegLoss |
| swav | Adam 1e-3 x B/128, wd 1e-6, cosine | SwaVTransform(2 crops of 32, min scale 0.14, cj_strength 0.5) | SwaVProjectionHead(256, 512, 128), SwaVPrototypes(128, 512), SwaVLoss |
| dino | as simclr | DINOTransform(2 global crops of 32, no local, cj_strength 0.5) | DINOProjectionHead(256, 2048, 256, 2048, BN) with the file's 2 layers, teacher head built afresh as in the file, EMA 0.99, DINOLoss(output_dim 2048) |
| nnclr | as simclr | SimCLRTransform(cj_strength 0.5) | ProjectionHead 256-2048-256 (BN), NNCLRPredictionHead(256, 4096, 256), NNMemoryBankModule(4096), NTXentLoss(0.5) |
| dcl | as simclr | SimCLRTransform(cj_strength 0.5) | SimCLRProjectionHead(256, 512, 128), DCLLoss(0.1) |

Every finished run appends one JSON line to ``--out`` (method, side, seed, kNN top-1, wall
seconds of training and in all, settings, load); runs already there are skipped, so a long
job resumes where it stopped. The final table reads every matching line of ``--out``: for
each method our mean and [min, max] over seeds, Lightly's, the verdict (``better``: our
mean above Lightly's best seed; ``within``: inside Lightly's seed range; ``below``: under
its worst seed) and both sides' training wall time per run. ``--set KEY=VALUE`` (with
``--sides selfsup``) is a trial of a selfsup setting (a ``PretrainConfig`` field such as
``weight_decay``, else a method option such as ``symmetric``): its lines carry ``options``
and the table compares them with Lightly's lines. Wall time is training only
(selfsup: ``trainer.fit``, i.e. steps, label-free monitors and the per-epoch checkpoint;
Lightly: its loop, workers included), each side as its user runs it (selfsup: its default
precision and channels_last; Lightly: fp32 as in its examples).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helpers of train_vs_lightly.py

import torch  # noqa: E402
from torch import nn  # noqa: E402

from train_vs_lightly import IMAGENET_MEAN, IMAGENET_STD, WAIT_POLICY, StepTimer, _one_thread, knn_top1  # noqa: E402

from selfsup import backbones  # noqa: E402
from selfsup.config import PretrainConfig  # noqa: E402
from selfsup.data.cache import cached_folder_source  # noqa: E402
from selfsup.data.sources import image_files  # noqa: E402
from selfsup.devices import Placement, cuda_count  # noqa: E402
from selfsup.cli import parse_options  # noqa: E402
from selfsup.errors import ConfigError  # noqa: E402
from selfsup.train.speed import keep_freed_memory  # noqa: E402

METHODS = ("simclr", "moco", "byol", "simsiam", "barlowtwins", "vicreg", "swav", "dino", "nnclr", "dcl")
CONFIG_FIELDS = {f.name for f in dataclasses.fields(PretrainConfig)}  # --set KEY=VALUE: these go to the config
KEY = ("method", "side", "seed", "epochs", "train_size", "test_size", "batch_size", "options")


# ---------------------------------------------------------------------------------------
# Lightly's side: its CIFAR-10 benchmark modules, on selfsup's smallcnn
# ---------------------------------------------------------------------------------------

def _embed(backbone, x):
    return backbone(x).flatten(start_dim=1)


class TwoViews(nn.Module):
    """One network on both views, one criterion (SimCLR, DCL, Barlow Twins, VICReg)."""

    def __init__(self, backbone, head, criterion):
        super().__init__()
        self.backbone, self.projection_head, self.criterion = backbone, head, criterion

    def loss(self, views, epoch):
        z0, z1 = (self.projection_head(_embed(self.backbone, x)) for x in views)
        return self.criterion(z0, z1)


def split_batchnorm(module: nn.Module, splits: int) -> nn.Module:
    """Every BatchNorm2d replaced by Lightly's SplitBatchNorm (weights kept), as the
    benchmark's ``ResNetGenerator(num_splits=8)`` builds MoCo's ResNet."""
    from lightly.models.batchnorm import SplitBatchNorm

    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            split = SplitBatchNorm(child.num_features, splits, eps=child.eps, momentum=child.momentum)
            split.weight.data.copy_(child.weight.data)
            split.bias.data.copy_(child.bias.data)
            setattr(module, name, split)
        else:
            split_batchnorm(child, splits)
    return module


class MoCo(nn.Module):
    def __init__(self, backbone):
        from lightly.loss import NTXentLoss
        from lightly.models.modules import MoCoProjectionHead
        from lightly.models.utils import deactivate_requires_grad

        super().__init__()
        self.backbone = split_batchnorm(backbone, 8)
        self.projection_head = MoCoProjectionHead(backbone.dim, 512, 128)
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)
        self.criterion = NTXentLoss(temperature=0.1, memory_bank_size=(4096, 128))

    def loss(self, views, epoch):
        from lightly.models.utils import batch_shuffle, batch_unshuffle, update_momentum

        update_momentum(self.backbone, self.backbone_momentum, 0.99)
        update_momentum(self.projection_head, self.projection_head_momentum, 0.99)

        def step(x0, x1):
            x1, shuffle = batch_shuffle(x1)
            q = self.projection_head(_embed(self.backbone, x0))
            k = batch_unshuffle(self.projection_head_momentum(_embed(self.backbone_momentum, x1)), shuffle)
            return q, k

        x0, x1 = views
        return 0.5 * (self.criterion(*step(x0, x1)) + self.criterion(*step(x1, x0)))


class BYOL(nn.Module):
    def __init__(self, backbone):
        from lightly.loss import NegativeCosineSimilarity
        from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
        from lightly.models.utils import deactivate_requires_grad

        super().__init__()
        self.backbone = backbone
        self.projection_head = BYOLProjectionHead(backbone.dim, 1024, 256)
        self.prediction_head = BYOLPredictionHead(256, 1024, 256)
        self.backbone_momentum = copy.deepcopy(backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)
        self.criterion = NegativeCosineSimilarity()

    def loss(self, views, epoch):
        from lightly.models.utils import update_momentum

        update_momentum(self.backbone, self.backbone_momentum, m=0.99)
        update_momentum(self.projection_head, self.projection_head_momentum, m=0.99)
        p0, p1 = (self.prediction_head(self.projection_head(_embed(self.backbone, x))) for x in views)
        z0, z1 = (self.projection_head_momentum(_embed(self.backbone_momentum, x)).detach() for x in views)
        return 0.5 * (self.criterion(p0, z1) + self.criterion(p1, z0))


class ProjectPredict(nn.Module):
    """Projection head (2 layers with BatchNorm, for CIFAR-10) then prediction head; the
    projection comes back detached (SimSiam, NNCLR)."""

    def __init__(self, backbone, projection_dim, prediction_head, criterion):
        from lightly.models.modules.heads import ProjectionHead

        super().__init__()
        self.backbone, self.prediction_head, self.criterion = backbone, prediction_head, criterion
        self.projection_head = ProjectionHead([
            (backbone.dim, 2048, nn.BatchNorm1d(2048), nn.ReLU(inplace=True)),
            (2048, projection_dim, nn.BatchNorm1d(projection_dim), None)])

    def targets(self, z0, z1):
        return z0, z1

    def loss(self, views, epoch):
        (z0, p0), (z1, p1) = (self._forward(x) for x in views)
        z0, z1 = self.targets(z0, z1)
        return 0.5 * (self.criterion(z0, p1) + self.criterion(z1, p0))

    def _forward(self, x):
        z = self.projection_head(_embed(self.backbone, x))
        return z.detach(), self.prediction_head(z)


class SimSiam(ProjectPredict):
    def __init__(self, backbone):
        from lightly.loss import NegativeCosineSimilarity
        from lightly.models.modules import SimSiamPredictionHead

        super().__init__(backbone, 2048, SimSiamPredictionHead(2048, 512, 2048), NegativeCosineSimilarity())


class SwAV(nn.Module):
    def __init__(self, backbone):
        from lightly.loss import SwaVLoss
        from lightly.models.modules import SwaVProjectionHead, SwaVPrototypes

        super().__init__()
        self.backbone = backbone
        self.projection_head = SwaVProjectionHead(backbone.dim, 512, 128)
        self.prototypes = SwaVPrototypes(128, 512)
        self.criterion = SwaVLoss()

    def loss(self, views, epoch):
        self.prototypes.normalize()
        features = [self.prototypes(nn.functional.normalize(self.projection_head(_embed(self.backbone, x)), dim=1, p=2))
                    for x in views]
        return self.criterion(features[:2], features[2:])


class NNCLR(ProjectPredict):
    def __init__(self, backbone):
        from lightly.loss import NTXentLoss
        from lightly.models.modules import NNCLRPredictionHead, NNMemoryBankModule

        super().__init__(backbone, 256, NNCLRPredictionHead(256, 4096, 256), NTXentLoss())
        self.memory_bank = NNMemoryBankModule(size=(4096, 256))

    def targets(self, z0, z1):  # each projection's nearest neighbour in the support set
        return self.memory_bank(z0, update=False), self.memory_bank(z1, update=True)


class DINO(nn.Module):
    def __init__(self, backbone):
        from lightly.loss import DINOLoss
        from lightly.models.utils import deactivate_requires_grad

        super().__init__()
        self.backbone = backbone
        self.head = self._head(backbone.dim)
        self.teacher_backbone = copy.deepcopy(backbone)
        self.teacher_head = self._head(backbone.dim)  # built afresh, as the benchmark does
        deactivate_requires_grad(self.teacher_backbone)
        deactivate_requires_grad(self.teacher_head)
        self.criterion = DINOLoss(output_dim=2048)

    @staticmethod
    def _head(dim):
        from lightly.models.modules import DINOProjectionHead
        from lightly.models.modules.heads import ProjectionHead

        head = DINOProjectionHead(dim, 2048, 256, 2048, batch_norm=True)
        head.layers = ProjectionHead([(dim, 2048, nn.BatchNorm1d(2048), nn.GELU()), (2048, 256, None, None)]).layers
        return head

    def loss(self, views, epoch):
        from lightly.models.utils import update_momentum

        update_momentum(self.backbone, self.teacher_backbone, m=0.99)
        update_momentum(self.head, self.teacher_head, m=0.99)
        teacher_out = [self.teacher_head(_embed(self.teacher_backbone, x)) for x in views[:2]]
        student_out = [self.head(_embed(self.backbone, x)) for x in views]
        return self.criterion(teacher_out, student_out, epoch=epoch)


def _sgd(params, lr, epochs):
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=5e-4)
    return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)


def _adam(params, lr, epochs):
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=1e-6)
    return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)


def _lars_warmup(params, lr, epochs):
    from lightly.utils.lars import LARS
    from lightly.utils.scheduler import CosineWarmupScheduler

    optimizer = LARS(params, lr=lr, weight_decay=1e-4, momentum=0.9)
    return optimizer, CosineWarmupScheduler(optimizer, max(1, epochs // 10), epochs)


def _two_views(head, criterion):
    return lambda backbone: TwoViews(backbone, head(backbone.dim), criterion())


def lightly_spec(name: str):
    """(model builder, transform builder, optimizer builder, lr at batch B) of Lightly's
    CIFAR-10 benchmark for ``name``."""
    from lightly import loss, transforms
    from lightly.models.modules import heads

    simclr_transform = lambda: transforms.SimCLRTransform(  # noqa: E731
        input_size=32, cj_strength=0.5, gaussian_blur=0.0)
    byol_transform = lambda: transforms.BYOLTransform(  # noqa: E731
        view_1_transform=transforms.BYOLView1Transform(input_size=32, gaussian_blur=0.0),
        view_2_transform=transforms.BYOLView2Transform(input_size=32, gaussian_blur=0.0))
    per_128 = lambda lr: (lambda batch: lr * batch / 128)  # noqa: E731  the file's lr_factor
    barlow_head = lambda dim: heads.ProjectionHead([  # noqa: E731
        (dim, 2048, nn.BatchNorm1d(2048), nn.ReLU(inplace=True)), (2048, 2048, None, None)])
    return {
        "simclr": (_two_views(lambda dim: heads.SimCLRProjectionHead(dim, 512, 128), loss.NTXentLoss),
                   simclr_transform, _sgd, per_128(0.06)),
        "dcl": (_two_views(lambda dim: heads.SimCLRProjectionHead(dim, 512, 128), loss.DCLLoss),
                simclr_transform, _sgd, per_128(0.06)),
        "barlowtwins": (_two_views(barlow_head, loss.BarlowTwinsLoss), byol_transform, _sgd, per_128(0.06)),
        "vicreg": (_two_views(lambda dim: heads.BarlowTwinsProjectionHead(dim, 2048, 2048), loss.VICRegLoss),
                   lambda: transforms.VICRegTransform(input_size=32, cj_strength=0.5, gaussian_blur=0.0),
                   _lars_warmup, lambda batch: 0.3 * batch / 256),
        "moco": (MoCo, simclr_transform, _sgd, per_128(0.06)),
        "byol": (BYOL, byol_transform, _sgd, per_128(0.06)),
        "simsiam": (SimSiam, lambda: transforms.SimSiamTransform(input_size=32, gaussian_blur=0.0), _sgd,
                    lambda batch: 0.06),
        "swav": (SwAV, lambda: transforms.SwaVTransform(crop_sizes=(32,), crop_counts=(2,), crop_min_scales=(0.14,),
                                                        crop_max_scales=(1.0,), cj_strength=0.5, gaussian_blur=0.0),
                 _adam, per_128(1e-3)),
        "dino": (DINO, lambda: transforms.DINOTransform(global_crop_size=32, n_local_views=0, cj_strength=0.5,
                                                        gaussian_blur=(0.0, 0.0, 0.0)), _sgd, per_128(0.06)),
        "nnclr": (NNCLR, simclr_transform, _sgd, per_128(0.06)),
    }[name]


def _synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def lightly_train(name, folder, batch_size, epochs, seed, workers, device, *, max_steps=None, warmup=0):
    """Lightly's benchmark module for ``name`` trained in a plain loop; returns (backbone,
    seconds of the loop, last loss, seconds per step after ``warmup`` steps or None)."""
    import torchvision

    build, transform, optimizer_for, lr_at = lightly_spec(name)
    torch.manual_seed(seed)
    backbone = backbones.create("smallcnn", image_size=32)
    model = build(backbone).to(device)
    dataset = torchvision.datasets.ImageFolder(str(folder), transform=transform())
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                                         num_workers=workers, worker_init_fn=_one_thread,
                                         generator=torch.Generator().manual_seed(seed),
                                         pin_memory=device.type == "cuda")
    optimizer, scheduler = optimizer_for([p for p in model.parameters() if p.requires_grad], lr_at(batch_size), epochs)
    step, loss, timed_from, timed_to = 0, torch.tensor(float("nan")), None, None
    started = time.perf_counter()
    for epoch in range(epochs):
        for views, _ in loader:
            views = [view.to(device, non_blocking=True) for view in views]
            loss = model.loss(views, epoch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            if warmup and step >= warmup:
                _synchronize(device)
                timed_from, timed_to = timed_from or time.perf_counter(), time.perf_counter()
            if max_steps and step >= max_steps:
                break
        scheduler.step()
        if max_steps and step >= max_steps:
            break
    _synchronize(device)
    seconds = time.perf_counter() - started
    per_step = (timed_to - timed_from) / (step - warmup) if timed_from and step > warmup else None
    return backbone, seconds, float(loss), per_step


# ---------------------------------------------------------------------------------------
# selfsup's side: the pretrain task, as a user calls it
# ---------------------------------------------------------------------------------------

def selfsup_config(name, folder, args, seed, out, **extra) -> PretrainConfig:
    return PretrainConfig(data=str(folder), method=name, backbone="smallcnn", image_size=32, epochs=args.epochs,
                          batch_size=args.batch_size, seed=seed, holdout=0.0, accelerator=args.accelerator,
                          cache_dir=str(args.cache_dir), report=False, out=str(out),
                          method_options={k: v for k, v in args.options.items() if k not in CONFIG_FIELDS} or None,
                          **{k: v for k, v in args.options.items() if k in CONFIG_FIELDS}, **extra)


def selfsup_train(name, folder, args, seed, root):
    """``pretrain`` then ``Run(out).method()``; returns (backbone, train seconds, total
    seconds, the resolved settings)."""
    from selfsup.runs import Run
    from selfsup.tasks import pretrain

    out = Path(root) / f"{name}-{seed}"
    summary = pretrain(selfsup_config(name, folder, args, seed, out))
    run = Run(out)
    config = run.config
    settings = {"optimizer": config.optimizer, "lr_per_256": config.lr, "lr": config.lr * config.batch_size / 256,
                "weight_decay": config.weight_decay, "warmup_epochs": config.warmup_epochs,
                "crop_min_scale": config.crop_min_scale, "precision": config.precision,
                "channels_last": config.channels_last, "method_options": config.method_options,
                "mean": config.mean, "std": config.std}
    backbone = run.method().backbone
    shutil.rmtree(out)  # its checkpoints (up to ~0.2 GB with a 2048-wide projector) are not needed
    return backbone, summary["train_seconds"], summary["seconds"], settings


class SyncedStepTimer(StepTimer):
    """StepTimer that waits for the GPU's queued work before taking each time."""

    def on_train_batch_end(self, *args):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        super().on_train_batch_end(*args)


def selfsup_step_seconds(name, folder, args, root, steps, warmup=1):
    """Seconds per step of ``selfsup.train.prepare`` + ``fit`` (the training of ``pretrain``)
    after ``warmup`` steps."""
    from selfsup.train import fit, prepare

    prepared = prepare(selfsup_config(name, folder, args, 0, Path(root) / f"time-{name}", max_steps=warmup + steps))
    timer = SyncedStepTimer(warmup)
    try:
        fit(prepared, callbacks=[timer])
    finally:
        prepared.release()
    return (timer.times[-1] - timer.times[warmup - 1]) / (len(timer.times) - warmup)


# ---------------------------------------------------------------------------------------
# data, results, table
# ---------------------------------------------------------------------------------------

def subset_folder(train_root: Path, size: int, work: Path) -> Path:
    """A folder of links to ``size`` training files (``randperm(N, seed 0)[:size]``, sorted),
    made once and reused; both sides read it."""
    files = image_files(train_root)
    if size > len(files):
        raise SystemExit(f"--train-size {size}: {train_root} holds {len(files)} images")
    index = torch.randperm(len(files), generator=torch.Generator().manual_seed(0))[:size].sort().values
    chosen = [files[i] for i in index.tolist()]
    folder = work / f"train-{size}"
    listing = sorted(str(p.relative_to(folder)) for p in image_files(folder)) if folder.exists() else None
    wanted = [str(p.relative_to(train_root)) for p in chosen]
    if listing != wanted:
        staging = Path(tempfile.mkdtemp(prefix=f"train-{size}-", dir=work))
        for path, relative in zip(chosen, wanted):
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            (staging / relative).symlink_to(path.resolve())
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    return folder


def check_same_order(folder: Path, source) -> None:
    import torchvision

    listed = torchvision.datasets.ImageFolder(str(folder)).samples
    if [str(Path(p).relative_to(folder)) for p, _ in listed] != list(source.ids):
        raise SystemExit("ImageFolder lists the training files in another order than selfsup")


def read_results(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a kill: that run is redone
    return rows


def append_result(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def key(row: dict) -> tuple:
    return tuple(json.dumps(row.get(k), sort_keys=True) for k in KEY)  # "options" only on trial runs


def _cell(values):
    if not values:
        return "n/a"
    mean = sum(values) / len(values)
    return f"{mean:.4f} [{min(values):.4f}, {max(values):.4f}]" if len(values) > 1 else f"{mean:.4f}"


def verdict(ours, theirs) -> str:
    if not ours or not theirs:
        return "incomplete"
    mean = sum(ours) / len(ours)
    return "better" if mean > max(theirs) else "within" if mean >= min(theirs) else "below"


def table(rows: list[dict], args) -> list[dict]:
    """One line per method from the runs matching this job's budget."""
    lines = []
    print(f"\nkNN top-1 (k=20, cosine, T=0.07) on {args.test_size} CIFAR-10 test images, smallcnn, "
          f"{args.epochs} epochs on {args.train_size} training images, batch {args.batch_size}; "
          f"mean [min, max] over seeds {args.seeds}; training wall seconds per run (mean)")
    header = (f"| {'method':<11} | {'selfsup':<24} | {'Lightly':<24} | {'verdict':<10} "
              f"| selfsup s | Lightly s | Lightly/selfsup |")
    print(header)
    print("|" + "|".join("-" * (len(part)) for part in header.split("|")[1:-1]) + "|")
    for name in args.methods:
        found = {side: [r for r in rows if r["method"] == name and r["side"] == side and r["seed"] in args.seeds
                        and (r["epochs"], r["train_size"], r["test_size"], r["batch_size"]) ==
                        (args.epochs, args.train_size, args.test_size, args.batch_size)
                        and r.get("options") == (args.options or None if side == "selfsup" else None)]
                 for side in ("selfsup", "lightly")}
        ours = [r["knn_top1"] for r in found["selfsup"]]
        theirs = [r["knn_top1"] for r in found["lightly"]]
        seconds = {side: (sum(r["train_seconds"] for r in found[side]) / len(found[side]) if found[side] else None)
                   for side in found}
        ratio = seconds["lightly"] / seconds["selfsup"] if seconds["lightly"] and seconds["selfsup"] else None
        line = {"method": name, "selfsup": ours, "lightly": theirs, "verdict": verdict(ours, theirs),
                "selfsup_seconds": seconds["selfsup"], "lightly_seconds": seconds["lightly"]}
        lines.append(line)
        show = lambda s: "n/a" if s is None else f"{s:.1f}"  # noqa: E731
        print(f"| {name:<11} | {_cell(ours):<24} | {_cell(theirs):<24} | {line['verdict']:<10} | "
              f"{show(seconds['selfsup']):>9} | {show(seconds['lightly']):>9} | "
              f"{'n/a' if ratio is None else f'{ratio:.2f}x':>15} |")
    return lines


def spread_subset(test, size: int):
    if size >= len(test):
        return test
    return test.subset(torch.linspace(0, len(test) - 1, size).round().long())  # every class, evenly


def estimate(args, folder, train, test, device, root) -> dict:
    """Seconds per step of each method on each side (after one warm-up step) at the job's
    batch size on ``folder``, the epoch time that implies, and the whole job's."""
    steps_per_epoch = args.train_size // args.batch_size
    per_method = {}
    for name in args.methods:
        ours = selfsup_step_seconds(name, folder, args, root, args.estimate_steps)
        _, _, _, theirs = lightly_train(name, folder, args.batch_size, args.epochs, 0, args.workers, device,
                                        max_steps=1 + args.estimate_steps, warmup=1)
        per_method[name] = {"selfsup_s_per_step": round(ours, 3), "lightly_s_per_step": round(theirs, 3),
                            "selfsup_s_per_epoch": round(ours * steps_per_epoch, 1),
                            "lightly_s_per_epoch": round(theirs * steps_per_epoch, 1)}
        print(f"estimate {name:<11} selfsup {ours:6.2f} s/step ({ours * steps_per_epoch:6.1f} s/epoch)  "
              f"Lightly {theirs:6.2f} s/step ({theirs * steps_per_epoch:6.1f} s/epoch)  load={os.getloadavg()}",
              flush=True)
    # embedding for kNN: selfsup's pretrain embeds its training set twice (baseline and
    # trained) and this script the bank and the queries once per run and side
    probe = train.subset(torch.arange(min(len(train), 1024)))
    started = time.perf_counter()
    knn_top1(backbones.create("smallcnn", image_size=32), probe, probe, IMAGENET_MEAN, IMAGENET_STD, Placement(device))
    per_image = (time.perf_counter() - started) / (2 * len(probe))
    evaluation = per_image * (4 * args.train_size + 2 * args.test_size)  # both sides of one seed
    training = sum(m["selfsup_s_per_epoch"] + m["lightly_s_per_epoch"] for m in per_method.values()) * args.epochs
    total = (training + evaluation * len(args.methods)) * len(args.seeds)
    return {"per_method": per_method, "steps_per_epoch": steps_per_epoch, "embed_s_per_image": per_image,
            "job_hours": round(total / 3600, 2), "training_hours": round(training * len(args.seeds) / 3600, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/tmp/cifar/cifar10-jpg", help="folder with train/ and test/ class folders")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 1 (dry run: 0)")
    parser.add_argument("--epochs", type=int, default=None, help="default 20 (dry run: 1)")
    parser.add_argument("--train-size", type=int, default=None, help="training images (default 10000; dry run 512)")
    parser.add_argument("--test-size", type=int, default=None, help="test images (default all 10000; dry run 512)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--out", default=None,
                        help="JSON lines, one per finished run; runs already there are skipped "
                             "(default runs/parity_lightly.jsonl; dry run: a temporary file)")
    parser.add_argument("--dry-run", action="store_true", help="every code path on a tiny budget, not a result")
    parser.add_argument("--estimate-steps", type=int, default=0,
                        help="instead of training: time this many steps (after 1) per method and side at the job's "
                             "sizes, and print the epoch and whole-job estimate")
    parser.add_argument("--accelerator", default="auto", choices=["cpu", "gpu", "auto"],
                        help="both sides' device (auto: the GPU where there is one)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--workers", type=int, default=None,
                        help="Lightly's DataLoader workers (default min(8, CPUs), the benchmark's 8)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="option",
                        help="a trial: a selfsup setting, a PretrainConfig field (lr, weight_decay, optimizer, "
                             "warmup_epochs, precision, ...) or else a method option (value read as YAML); recorded "
                             "in the line's \"options\", and the table then reads only lines with the same ones")
    parser.add_argument("--sides", nargs="+", default=["selfsup", "lightly"], choices=["selfsup", "lightly"])
    parser.add_argument("--work-dir", default=None, help="subset folder and decoded-image cache "
                                                         "(default $TMPDIR/selfsup-parity)")
    args = parser.parse_args()
    try:
        args.options = parse_options(args.option, flag="set")
    except ConfigError as error:
        parser.error(str(error))
    tiny = args.dry_run
    args.seeds = args.seeds if args.seeds is not None else [0] if tiny else [0, 1]
    args.epochs = args.epochs or (1 if tiny else 20)
    args.train_size = args.train_size or (512 if tiny else 10_000)
    args.workers = min(8, os.cpu_count() or 1) if args.workers is None else args.workers
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.accelerator == "auto":
        args.accelerator = "gpu" if cuda_count() else "cpu"
    device = torch.device("cuda" if args.accelerator == "gpu" else "cpu")
    work = Path(args.work_dir or Path(tempfile.gettempdir()) / "selfsup-parity")
    work.mkdir(parents=True, exist_ok=True)
    args.cache_dir = work / "cache"
    allocator = "keep_freed_memory" if keep_freed_memory() else "glibc default"  # both sides, as in B2
    warnings.filterwarnings("ignore", category=UserWarning)
    for name in ("lightning.pytorch", "lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)  # Lightning's notices, as the command line silences them

    import lightly

    root = Path(args.data)
    started = time.perf_counter()
    folder = subset_folder(root / "train", args.train_size, work)
    train = cached_folder_source(folder, 32, args.cache_dir)
    test = cached_folder_source(root / "test", 32, args.cache_dir)
    args.test_size = min(args.test_size or (512 if tiny else len(test)), len(test))
    test = spread_subset(test, args.test_size)
    check_same_order(folder, train)
    context = {"device": str(device), "threads": torch.get_num_threads(), "workers": args.workers,
               "allocator": allocator, "omp_wait_policy": WAIT_POLICY, "lightly_version": lightly.__version__,
               "torch_version": torch.__version__, "cpus": os.cpu_count()}
    print(f"{len(train)} training images ({folder}), {len(test)} test images, loaded in "
          f"{time.perf_counter() - started:.1f} s; {json.dumps(context)}  load={os.getloadavg()}", flush=True)

    with tempfile.TemporaryDirectory(prefix="parity-runs-", dir=work) as runs:
        if args.estimate_steps:
            result = estimate(args, folder, train, test, device, runs)
            print(f"estimate: one epoch of {args.train_size} images at batch {args.batch_size} is "
                  f"{result['steps_per_epoch']} steps; the whole job ({len(args.methods)} methods x "
                  f"{len(args.seeds)} seeds x 2 sides x {args.epochs} epochs) ~ {result['job_hours']} h here "
                  f"({result['training_hours']} h of it training)  load={os.getloadavg()}")
            print("RESULT " + json.dumps({**context, "estimate": result, "epochs": args.epochs,
                                          "train_size": args.train_size, "batch_size": args.batch_size}))
            return
        out = Path(args.out or (Path(runs) / "dry-run.jsonl" if tiny else "runs/parity_lightly.jsonl"))
        done = {key(r) for r in read_results(out)}
        for name in args.methods:
            for seed in args.seeds:
                for side in args.sides:
                    row = {"method": name, "side": side, "seed": seed, "epochs": args.epochs,
                           "train_size": args.train_size, "test_size": args.test_size, "batch_size": args.batch_size}
                    if args.options and side == "selfsup":
                        row["options"] = args.options
                    if key(row) in done:
                        print(f"skip {name} {side} seed {seed}: in {out}", flush=True)
                        continue
                    load_before = os.getloadavg()
                    run_started = time.perf_counter()
                    if side == "selfsup":
                        backbone, train_seconds, _, settings = selfsup_train(name, folder, args, seed, runs)
                        mean, std = settings.pop("mean"), settings.pop("std")
                        final_loss = None
                    else:
                        backbone, train_seconds, final_loss, _ = lightly_train(
                            name, folder, args.batch_size, args.epochs, seed, args.workers, device)
                        mean, std, settings = IMAGENET_MEAN, IMAGENET_STD, {"precision": "32-true"}
                    evaluated = time.perf_counter()
                    accuracy = knn_top1(backbone, train, test, mean, std, Placement(device))
                    row.update(knn_top1=accuracy, train_seconds=round(train_seconds, 1),
                               eval_seconds=round(time.perf_counter() - evaluated, 1),
                               total_seconds=round(time.perf_counter() - run_started, 1),
                               final_loss=final_loss, settings=settings, **context,
                               load=[load_before, os.getloadavg()], dry_run=tiny,
                               finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
                    if not math.isfinite(accuracy):
                        raise SystemExit(f"{name} {side} seed {seed}: kNN top-1 {accuracy}")
                    append_result(out, row)
                    print(f"{name:<11} {side:<7} seed {seed}: kNN top-1 {accuracy:.4f}  train {train_seconds:.1f} s  "
                          f"all {row['total_seconds']:.1f} s  load={os.getloadavg()}", flush=True)
        lines = table(read_results(out), args)
        print("RESULT " + json.dumps({**context, "epochs": args.epochs, "train_size": args.train_size,
                                      "test_size": args.test_size, "batch_size": args.batch_size,
                                      "seeds": args.seeds, "dry_run": tiny, "out": str(out), "table": lines}))


if __name__ == "__main__":
    main()
