"""GPU check: augmentation, training throughput, step overhead and one CIFAR-10 run on a
CUDA GPU, each against a peer on the same GPU in this one script run.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/gpu_check.py --data /tmp/cifar/cifar10-jpg
    PYTHONPATH=$PWD .venv/bin/python benchmarks/gpu_check.py --dry-run     # CPU, seconds (tested in CI)

(a) B1 on the GPU: SimCLR views (two per image) of uint8 batches already on the GPU,
    images/s: selfsup's batched recipe, kornia's ``AugmentationSequential`` (batched,
    per-sample parameters), torchvision ``transforms.v2`` one sample at a time on GPU tensors
    (v2 draws one set of parameters per call, so per-sample views need one call a sample).
(b) Training images/s with ResNet-18 (small-image stem) at 32 px, batch 256, SimCLR and BYOL:
    selfsup's Lightning loop (``PretrainModule``: in-memory uint8 images, augmentation on the
    GPU, channels_last) against Lightly's documented GPU pipeline (``SimCLRTransform`` /
    ``BYOLTransform`` on PIL images in DataLoader workers, pinned memory, its heads, losses and
    momentum update, SGD), both under the same autocast (bf16 where the GPU has it, else fp32).
(c) overhead = selfsup's full step (augmentation + method + optimizer) / the bare backbone's
    forward and backward on the same two views.
(d) one CIFAR-10 SimCLR run through ``selfsup.tasks.pretraining`` (ResNet-18, the defaults) of
    as many epochs as (b)'s throughput says fit in ``--train-minutes``, and its kNN top-1 on the
    fixed 20% holdout of the training images (10,000 images, excluded from pretraining).

``--dry-run`` (or no CUDA GPU) runs every part on the CPU with tiny sizes, to check the
script, not to measure. Images for (a)-(d) are random uint8 (augmentation and step cost do
not depend on content). Needs ``pip install -e .[bench]`` (kornia, lightly). Prints one line
per measurement, then ``RESULT {json}`` with the targets of issue 15 (augmentation >= 5x
kornia, training >= 2x Lightly, overhead <= 1.10) marked met or not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from augment_throughput import MEAN, STD, torchvision_transform  # noqa: E402

from selfsup import augment, backbones, methods  # noqa: E402
from selfsup.devices import native_bf16  # noqa: E402
from selfsup.methods.optim import create_optimizer  # noqa: E402
from selfsup.train.speed import apply_speed_switches, keep_freed_memory  # noqa: E402


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_second(run_batch, images_per_call: int, calls: int, device, warmup: int = 2) -> float:
    for _ in range(warmup):
        run_batch()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(calls):
        run_batch()
    synchronize(device)
    return images_per_call * calls / (time.perf_counter() - started)


def autocast(device: torch.device, dtype):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


# (a) augmentation ---------------------------------------------------------------------------

def augmentation(images: torch.Tensor, batch: int, calls: int, per_sample: int) -> dict:
    import kornia.augmentation as K

    device = images.device
    recipe = augment.create("simclr", 32)
    step = {"n": 0}

    def ours():
        step["n"] += 1
        start = (step["n"] * batch) % (len(images) - batch + 1)
        recipe(images[start:start + batch], torch.Generator().manual_seed(step["n"]), MEAN, STD)

    kornia = K.AugmentationSequential(
        K.RandomResizedCrop((32, 32), scale=(0.08, 1.0)), K.RandomHorizontalFlip(),
        K.ColorJitter(0.8, 0.8, 0.8, 0.2, p=0.8), K.RandomGrayscale(p=0.2),
        K.Normalize(torch.tensor(MEAN), torch.tensor(STD))).to(device)

    def theirs():
        x = images[:batch].float().div_(255)
        kornia(x), kornia(x)

    transform = torchvision_transform(32)

    def torchvision():  # one call a sample: v2 draws one parameter set per call
        for image in images[:per_sample]:
            transform(image), transform(image)

    result = {"selfsup": images_per_second(ours, batch, calls, device),
              "kornia": images_per_second(theirs, batch, calls, device),
              "torchvision": images_per_second(torchvision, per_sample, 1, device, warmup=1)}
    result = {k: round(v, 1) for k, v in result.items()}
    result["vs_kornia"] = round(result["selfsup"] / result["kornia"], 2)
    result["vs_torchvision"] = round(result["selfsup"] / result["torchvision"], 2)
    return result


# (b) training throughput --------------------------------------------------------------------

class StepTimes:
    def __init__(self):
        self.times = []

    def mark(self, device):
        synchronize(device)
        self.times.append(time.perf_counter())

    def rate(self, batch: int, warmup: int) -> float:
        timed = self.times[warmup:]
        return batch * (len(timed) - 1) / (timed[-1] - timed[0])


def selfsup_training(method_name: str, images: torch.Tensor, batch: int, steps: int, warmup: int,
                     accelerator: str, precision: str) -> float:
    import lightning as L

    from selfsup.train.module import PretrainModule, train_loader

    device = torch.device("cuda" if accelerator == "gpu" else "cpu")
    torch.manual_seed(0)
    cls = methods.METHODS[method_name]
    method = apply_speed_switches(methods.create(method_name, backbones.create("resnet18", image_size=32)),
                                  channels_last=True)
    loader = train_loader(images, batch, seed=0)
    module = PretrainModule(method, augment.create(cls.recipe, 32), MEAN, STD, optimizer=cls.optimizer.name,
                            lr=cls.optimizer.lr * batch / 256, weight_decay=cls.optimizer.weight_decay,
                            warmup_epochs=0, epochs=1, steps_per_epoch=len(loader), seed=0, batch_size=batch)
    timer = StepTimes()

    class Timer(L.Callback):
        def on_train_batch_end(self, *args):
            timer.mark(device)

    with tempfile.TemporaryDirectory() as root, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = L.Trainer(max_steps=warmup + steps, accelerator=accelerator, devices=1, precision=precision,
                            logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, callbacks=[Timer()], default_root_dir=root)
        trainer.fit(module, train_dataloaders=loader)
    return timer.rate(batch, warmup)


class PILImages(torch.utils.data.Dataset):
    """uint8 (N, 3, H, W) images as PIL images through a transform, as ImageFolder gives them."""

    def __init__(self, images: torch.Tensor, transform):
        self.images, self.transform = images.permute(0, 2, 3, 1).numpy(), transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), 0


def lightly_training(method_name: str, images: torch.Tensor, batch: int, steps: int, warmup: int,
                     device: torch.device, dtype, workers: int) -> float:
    """Lightly's SimCLR / BYOL examples (lightly 1.6 docs, examples/pytorch), on the GPU."""
    import copy

    from lightly.loss import NegativeCosineSimilarity, NTXentLoss
    from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead, SimCLRProjectionHead
    from lightly.models.utils import deactivate_requires_grad, update_momentum
    from lightly.transforms import BYOLTransform, BYOLView1Transform, BYOLView2Transform, SimCLRTransform
    from lightly.utils.scheduler import cosine_schedule

    torch.manual_seed(0)
    backbone = backbones.create("resnet18", image_size=32)
    if method_name == "simclr":
        transform = SimCLRTransform(input_size=32, gaussian_blur=0.0)
        model = torch.nn.Sequential(backbone, SimCLRProjectionHead(backbone.dim, backbone.dim, 128)).to(device)
        criterion = NTXentLoss(temperature=0.5)
    else:
        transform = BYOLTransform(view_1_transform=BYOLView1Transform(input_size=32, gaussian_blur=0.0),
                                  view_2_transform=BYOLView2Transform(input_size=32, gaussian_blur=0.0))
        projector = BYOLProjectionHead(backbone.dim, 1024, 256)
        online = torch.nn.Sequential(backbone, projector).to(device)
        predictor = BYOLPredictionHead(256, 1024, 256).to(device)
        target = copy.deepcopy(online)
        deactivate_requires_grad(target)
        model = torch.nn.ModuleList([online, predictor])
        criterion = NegativeCosineSimilarity()
    loader = torch.utils.data.DataLoader(PILImages(images, transform), batch_size=batch, shuffle=True,
                                         drop_last=True, num_workers=workers, pin_memory=device.type == "cuda",
                                         persistent_workers=workers > 0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9, weight_decay=5e-4)
    timer, step = StepTimes(), 0
    while step < warmup + steps:
        for (view0, view1), _ in loader:
            view0, view1 = view0.to(device, non_blocking=True), view1.to(device, non_blocking=True)
            with autocast(device, dtype):
                if method_name == "simclr":
                    loss = criterion(model(view0), model(view1))
                else:
                    update_momentum(online, target, m=cosine_schedule(step, warmup + steps, 0.996, 1))
                    p0, p1 = predictor(online(view0)), predictor(online(view1))
                    with torch.no_grad():
                        z0, z1 = target(view0).detach(), target(view1).detach()
                    loss = 0.5 * (criterion(p0, z1) + criterion(p1, z0))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            timer.mark(device)
            step += 1
            if step >= warmup + steps:
                break
    return timer.rate(batch, warmup)


# (c) overhead -------------------------------------------------------------------------------

def seconds_per_call(function, calls: int, device, warmup: int = 2) -> float:
    for _ in range(warmup):
        function()
    times = []
    for _ in range(calls):
        synchronize(device)
        started = time.perf_counter()
        function()
        synchronize(device)
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def overhead(images: torch.Tensor, calls: int, dtype) -> dict:
    device = images.device
    torch.manual_seed(0)
    method = apply_speed_switches(methods.create("simclr", backbones.create("resnet18", image_size=32)),
                                  channels_last=True).to(device)
    recipe = augment.create("simclr", 32)
    optimizer = create_optimizer("lars", method, 0.3, 1e-6)
    views = recipe(images, torch.Generator().manual_seed(0), MEAN, STD)
    state = {"step": 0}

    def bare():
        with autocast(device, dtype):
            loss = sum(method.backbone(v).float().mean() for v in views)
        loss.backward()
        method.zero_grad(set_to_none=True)

    def full():
        state["step"] += 1
        step_views = recipe(images, torch.Generator().manual_seed(state["step"]), MEAN, STD)
        with autocast(device, dtype):
            loss = method.training_step(step_views)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    bare_s, step_s = seconds_per_call(bare, calls, device), seconds_per_call(full, calls, device)
    return {"bare_s": round(bare_s, 5), "step_s": round(step_s, 5), "overhead": round(step_s / bare_s, 3)}


# (d) one CIFAR-10 run -----------------------------------------------------------------------

def cifar_run(data: str, epochs: int, accelerator: str, image_size: int | None, out: Path,
              backbone: str = "resnet18") -> dict:
    from selfsup.config import PretrainConfig
    from selfsup.tasks import pretrain

    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = pretrain(PretrainConfig(data=data, method="simclr", backbone=backbone, epochs=epochs,
                                          accelerator=accelerator, image_size=image_size, out=str(out),
                                          report=False))
    return {"epochs": epochs, "seconds": round(time.perf_counter() - started, 1),
            "train_seconds": summary["train_seconds"], "knn_top1": summary["knn_top1"],
            "baseline_knn_top1": summary["baseline_knn_top1"], "test_samples": summary["test_samples"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU, to check the script")
    parser.add_argument("--data", default="/tmp/cifar/cifar10-jpg", help="CIFAR-10 folder with train/ (part d)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--train-minutes", type=float, default=4.0, help="budget of the CIFAR-10 run (part d)")
    parser.add_argument("--workers", type=int, default=None, help="Lightly's DataLoader workers (default: CPUs, max 16)")
    parser.add_argument("--out", default=None, help="run directory of part d (default: a temporary one)")
    args = parser.parse_args()
    cuda = torch.cuda.is_available() and not args.dry_run
    dry = not cuda
    device = torch.device("cuda" if cuda else "cpu")
    accelerator = "gpu" if cuda else "cpu"
    bf16 = native_bf16(accelerator) and not dry
    dtype, precision = (torch.bfloat16, "bf16-mixed") if bf16 else (None, "32-true")
    batch = 16 if dry else args.batch_size
    workers = 0 if dry else (args.workers or min(16, os.cpu_count() or 1))
    keep_freed_memory()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    result = {"device": torch.cuda.get_device_name(0) if cuda else "cpu (dry run)", "dry_run": dry,
              "precision": precision, "batch_size": batch, "lightly_workers": workers,
              "torch": torch.__version__, "cuda": torch.version.cuda}
    print(f"device: {result['device']}, precision {precision}, batch {batch}", flush=True)
    started = time.perf_counter()

    images = torch.randint(0, 256, (4 * batch, 3, 32, 32), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    result["augmentation"] = augmentation(images.to(device), batch, 3 if dry else 50, 8 if dry else 512)
    print(f"(a) augmentation images/s: {result['augmentation']}", flush=True)

    steps, warmup = (2, 1) if dry else (30, 5)
    result["training"] = {}
    for name in ("simclr", "byol"):
        ours = selfsup_training(name, images, batch, steps, warmup, accelerator, precision)
        theirs = lightly_training(name, images, batch, steps, warmup, device, dtype, workers)
        result["training"][name] = {"selfsup": round(ours, 1), "lightly": round(theirs, 1),
                                    "vs_lightly": round(ours / theirs, 2)}
        print(f"(b) {name} ResNet-18 images/s: {result['training'][name]}", flush=True)

    result["overhead"] = overhead(images[:batch].to(device), 3 if dry else 20, dtype)
    print(f"(c) step overhead: {result['overhead']}", flush=True)

    rate = result["training"]["simclr"]["selfsup"]
    backbone = "resnet18"
    if dry:  # the code path only: a small CNN on digits
        data, epochs, size, backbone = "digits", 1, 16, "smallcnn"
    elif Path(args.data, "train").is_dir():
        data, size = str(Path(args.data, "train")), None
        epochs = max(1, int(args.train_minutes * 60 * rate / 40_000))  # 40k training images after the holdout
    else:
        data = None
        result["cifar10"] = f"skipped: no {args.data}/train (unpack ../shared/data/cifar10-jpg.tar.gz)"
    if data is not None:
        with tempfile.TemporaryDirectory() as scratch:
            result["cifar10"] = cifar_run(data, epochs, accelerator, size, Path(args.out or Path(scratch) / "run"),
                                          backbone)
    print(f"(d) CIFAR-10 SimCLR run: {result['cifar10']}", flush=True)

    result["targets"] = "not measured (dry run)" if dry else {
        "augmentation_5x_kornia": result["augmentation"]["vs_kornia"] >= 5,
        "training_2x_lightly": min(r["vs_lightly"] for r in result["training"].values()) >= 2,
        "overhead_at_most_1.10": result["overhead"]["overhead"] <= 1.10}
    result["seconds"] = round(time.perf_counter() - started, 1)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
