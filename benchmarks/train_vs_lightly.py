"""B2 and B4: SimCLR training on CIFAR-10 JPEGs, selfsup against Lightly's documented
pipeline, on the same cores in one run.

    tar xzf ../shared/data/cifar10-jpg.tar.gz -C /tmp/cifar
    PYTHONPATH=$PWD OMP_NUM_THREADS=1 .venv/bin/python benchmarks/train_vs_lightly.py \\
        --data /tmp/cifar/cifar10-jpg [--quick]

- selfsup: the folder decoded once to uint8 (through the on-disk cache), the Lightning
  loop of ``selfsup pretrain`` (``PretrainModule``: batched augmentation in the main
  process, SimCLR projector and NT-Xent, LARS).
- Lightly: ``torchvision.datasets.ImageFolder`` with ``lightly.transforms.SimCLRTransform``
  (32 px, no blur) in ``--threads`` DataLoader workers, ``SimCLRProjectionHead``,
  ``NTXentLoss`` and SGD in a plain loop, as in Lightly's SimCLR example.

Both use the same backbone (selfsup's ``smallcnn`` and ``resnet18`` with the small-image
stem), batch 256, temperature 0.5, ``--threads`` threads for the network. selfsup runs with
its defaults, as ``selfsup pretrain`` resolves them: channels_last, and ``precision auto``
(bf16 autocast where the CPU has bf16 units, else fp32); ``--no-channels-last`` and
``--precision 32-true`` turn them off. Lightly's loop runs as its example does (fp32,
contiguous). Both share the process's memory allocator: ``keep_freed_memory`` (what
``selfsup pretrain`` sets) from the start, or glibc's defaults with ``--default-allocator``.

B2: images/s over the steps after the warm-up steps (data waiting included).
B4: kNN top-1 (k=20, cosine, T=0.07) on the CIFAR-10 test images after the same epochs on a
fixed 10k training subset, small CNN, for each seed, each pipeline with the settings of B2. Needs ``pip install -e .[bench]``.
Prints one line per measurement, then ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

# OpenMP's wait policy is left as the environment sets it, as for `selfsup pretrain`. On a
# loaded machine, OMP_WAIT_POLICY=PASSIVE avoids threads spinning for a descheduled peer
# (16x slower 2-thread augmentation there); on a quiet one it costs batched augmentation
# ~40% (measured: 30k against 48k images/s at 32 px). The script prints which was in force.
WAIT_POLICY = os.environ.get("OMP_WAIT_POLICY", "default")

import lightning as L  # noqa: E402
import torch  # noqa: E402

from selfsup import augment, backbones, methods
from selfsup.data.cache import cached_folder_source
from selfsup.evaluate.protocols import embed_images, knn_predict
from selfsup.train.module import PretrainModule, train_loader
from selfsup.devices import CPU, Placement, default_precision
from selfsup.train.speed import apply_speed_switches, keep_freed_memory

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # Lightly's default


class StepTimer(L.Callback):
    """The end time of every step; images/s from the end of the warm-up steps to the end
    of the last step, waits for batches included."""

    def __init__(self, warmup: int):
        self.warmup, self.times = warmup, []

    def on_train_batch_end(self, *args):
        self.times.append(time.perf_counter())

    def steps_per_second(self):
        timed = len(self.times) - self.warmup
        return timed / (self.times[-1] - self.times[self.warmup - 1]) if timed > 0 and self.warmup else None


def selfsup_train(images, backbone_name, batch_size, seed, *, max_steps=None, epochs=None, warmup=0,
                  channels_last=False, precision="32-true"):
    """Train SimCLR the selfsup way; returns (backbone, images/s after warm-up, mean, std)."""
    x = images[:10_000].float().div_(255)
    mean, std = x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).tolist()
    torch.manual_seed(seed)
    method = methods.create("simclr", backbones.create(backbone_name, image_size=32))
    apply_speed_switches(method, channels_last=channels_last)
    loader = train_loader(images, batch_size, seed)
    epochs = epochs or 1
    module = PretrainModule(method, augment.create("simclr", 32), mean, std, optimizer="lars",
                            lr=0.3 * batch_size / 256, weight_decay=1e-6, warmup_epochs=0, epochs=epochs,
                            steps_per_epoch=len(loader), seed=seed, batch_size=batch_size)
    timer = StepTimer(warmup)
    with tempfile.TemporaryDirectory() as root, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = L.Trainer(max_epochs=epochs, max_steps=max_steps or -1, accelerator="cpu", logger=False,
                            precision=precision,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            callbacks=[timer], default_root_dir=root)
        trainer.fit(module, train_dataloaders=loader)
    speed = timer.steps_per_second()
    speed = speed and batch_size * speed
    return method.backbone, speed, mean, std


def _one_thread(_):
    torch.set_num_threads(1)


def lightly_train(folder, indices, backbone_name, batch_size, seed, workers, *, max_steps=None, epochs=1,
                  warmup=0):
    """Lightly's SimCLR example loop; returns (backbone, images/s after warm-up)."""
    import torchvision
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead
    from lightly.transforms import SimCLRTransform

    torch.manual_seed(seed)
    backbone = backbones.create(backbone_name, image_size=32)
    model = torch.nn.Sequential(backbone, SimCLRProjectionHead(backbone.dim, backbone.dim, 128))
    dataset = torchvision.datasets.ImageFolder(str(folder), transform=SimCLRTransform(input_size=32, gaussian_blur=0.0))
    if indices is not None:
        dataset = torch.utils.data.Subset(dataset, indices)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                                         num_workers=workers, worker_init_fn=_one_thread,
                                         generator=torch.Generator().manual_seed(seed))
    criterion = NTXentLoss(temperature=0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9, weight_decay=5e-4)
    step, started, ended = 0, None, None
    for _ in range(epochs):
        for (view0, view1), _ in loader:
            loss = criterion(model(view0), model(view1))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            if step == warmup:
                started = time.perf_counter()
            elif step > warmup:
                ended = time.perf_counter()
            if max_steps and step >= max_steps:
                break
        if max_steps and step >= max_steps:
            break
    speed = batch_size * (step - warmup) / (ended - started) if started and ended else None
    return backbone, speed


def knn_top1(backbone, train, test, mean, std, placement: Placement = CPU) -> float:
    train_embeddings = embed_images(backbone, train.images, mean, std, placement=placement)
    test_embeddings = embed_images(backbone, test.images, mean, std, placement=placement)
    predicted = knn_predict(train_embeddings, train.labels, test_embeddings, k=20)
    return round(float((predicted == test.labels).float().mean()), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/tmp/cifar/cifar10-jpg", help="folder with train/ and test/")
    parser.add_argument("--quick", action="store_true",
                        help="small CNN only, few steps, B4 on 2k images for 1 epoch, 1 seed (< 3 min)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None, help="timed steps per pipeline (default 20; quick 4)")
    parser.add_argument("--resnet-steps", type=int, default=None, help="timed ResNet-18 steps (default 5; quick 1)")
    parser.add_argument("--epochs", type=int, default=None, help="B4 epochs (default 3; quick 1)")
    parser.add_argument("--seeds", type=int, nargs="*", default=None, help="B4 seeds (default 0 1; quick 0)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                        help="selfsup runs with channels_last (its default for CNNs)")
    parser.add_argument("--precision", default="auto",
                        help="selfsup precision: auto (its default: bf16-mixed where the CPU has bf16 units), "
                             "32-true, bf16-mixed")
    parser.add_argument("--default-allocator", action="store_true",
                        help="glibc's malloc defaults for both pipelines instead of keep_freed_memory")
    parser.add_argument("--cache-dir", default=None, help="decoded-image cache (default ~/.cache/selfsup)")
    parser.add_argument("--skip", nargs="*", default=None, choices=["small", "resnet18", "quality"],
                        help="parts to leave out (quick: resnet18, whose steps alone take minutes on 2 cores)")
    args = parser.parse_args()
    args.skip = (["resnet18"] if args.quick else []) if args.skip is None else args.skip
    torch.set_num_threads(args.threads)
    if args.precision == "auto":
        args.precision = default_precision()
    allocator = "glibc default" if args.default_allocator or not keep_freed_memory() else "keep_freed_memory"
    root = Path(args.data)
    steps = args.steps or (4 if args.quick else 20)
    resnet_steps = args.resnet_steps or (1 if args.quick else 5)
    epochs = args.epochs or (1 if args.quick else 3)
    subset_size = 2_000 if args.quick else 10_000
    seeds = args.seeds or ([0] if args.quick else [0, 1])
    result = {"batch_size": args.batch_size, "threads": args.threads, "steps": steps,
              "selfsup_channels_last": args.channels_last, "selfsup_precision": args.precision,
              "allocator": allocator,
              "resnet_steps": resnet_steps, "b4_epochs": epochs, "b4_subset": subset_size}

    started = time.perf_counter()
    train = cached_folder_source(root / "train", 32, args.cache_dir)
    result["load_train_s"] = round(time.perf_counter() - started, 2)
    test = cached_folder_source(root / "test", 32, args.cache_dir)
    print(f"loaded {len(train)} train / {len(test)} test images in {result['load_train_s']} s "
          f"(cache: {args.cache_dir or 'default'})  load={os.getloadavg()}", flush=True)

    runs = [("small", "smallcnn", steps, 2)] if "small" not in args.skip else []
    runs += [("resnet18", "resnet18", resnet_steps, 1)] if "resnet18" not in args.skip else []
    for key, name, timed, warmup in runs:
        _, ours, _, _ = selfsup_train(train.images, name, args.batch_size, 0, max_steps=warmup + timed,
                                      warmup=warmup, channels_last=args.channels_last, precision=args.precision)
        print(f"B2 {name:<9} selfsup {ours:8.1f} images/s ({timed} steps after {warmup})  load={os.getloadavg()}",
              flush=True)
        _, theirs = lightly_train(root / "train", None, name, args.batch_size, 0, args.threads,
                                  max_steps=warmup + timed, warmup=warmup)
        print(f"B2 {name:<9} lightly {theirs:8.1f} images/s ({timed} steps after {warmup})  load={os.getloadavg()}",
              flush=True)
        result[f"selfsup_images_per_s_{key}"], result[f"lightly_images_per_s_{key}"] = round(ours, 1), round(theirs, 1)
        result[f"speedup_vs_lightly_{key}"] = round(ours / theirs, 2)

    if "quality" not in args.skip:
        # a fixed subset, the same files for both pipelines (ImageFolder and selfsup sort alike)
        import torchvision

        listed = torchvision.datasets.ImageFolder(str(root / "train")).samples
        if [str(Path(p).relative_to(root / "train")) for p, _ in listed] != train.ids:
            raise SystemExit("ImageFolder lists the training files in another order than selfsup")
        index = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:subset_size].sort().values
        subset = train.subset(index)
        evaluation_test = test.subset(torch.arange(0, len(test), len(test) // min(len(test), subset_size)))
        for seed in seeds:
            backbone, _, mean, std = selfsup_train(subset.images, "smallcnn", args.batch_size, seed, epochs=epochs,
                                                   channels_last=args.channels_last, precision=args.precision)
            ours = knn_top1(backbone, subset, evaluation_test, mean, std)
            backbone, _ = lightly_train(root / "train", index.tolist(), "smallcnn", args.batch_size, seed,
                                        args.threads, epochs=epochs)
            theirs = knn_top1(backbone, subset, evaluation_test, IMAGENET_MEAN, IMAGENET_STD)
            print(f"B4 seed {seed}: kNN top-1 selfsup {ours:.4f}  lightly {theirs:.4f}  "
                  f"({epochs} epochs on {subset_size} images, {len(evaluation_test)} test)  load={os.getloadavg()}",
                  flush=True)
            result.setdefault("knn_top1_selfsup", []).append(ours)
            result.setdefault("knn_top1_lightly", []).append(theirs)
    result["omp_wait_policy"], result["loadavg"] = WAIT_POLICY, os.getloadavg()
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
