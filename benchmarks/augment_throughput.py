"""B1: SimCLR augmentation throughput (images/s, two views each), selfsup against peers
on the same cores in one run.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 .venv/bin/python benchmarks/augment_throughput.py [--quick]

- selfsup: ``augment.create("simclr", size)`` on a whole uint8 batch, in the main process.
- torchvision: ``transforms.v2`` one sample at a time (uint8 tensors) in ``--threads``
  DataLoader workers of one thread each, the usual peer pipeline.
- kornia: ``kornia.augmentation`` batched on float images, in the main process.

All three get the same number of threads (``--threads``, default 2) and the same memory
allocator: ``keep_freed_memory`` (what ``selfsup pretrain`` sets) is applied at the start
for the whole process, DataLoader workers included; ``--default-allocator`` runs all three
with glibc's defaults instead. Images are random uint8 (augmentation cost does not depend
on content). Blur is on above 32 px for all (SimCLR: kernel 10 % of the side). Each
pipeline runs for at least ``--seconds`` after two warm-up batches, in ``--rounds`` rounds
that take the pipelines in turn; the median round is reported. Needs
``pip install -e .[bench]`` for kornia. Prints one line per (size, pipeline), then
``RESULT {json}``; ratios are selfsup images/s divided by the peer's, measured in this run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

# OpenMP's wait policy is left as the environment sets it, as for `selfsup pretrain`. On a
# loaded machine, OMP_WAIT_POLICY=PASSIVE avoids threads spinning for a descheduled peer
# (16x slower 2-thread augmentation there); on a quiet one it costs batched augmentation
# ~40% (measured: 30k against 48k images/s at 32 px). The script prints which was in force.
WAIT_POLICY = os.environ.get("OMP_WAIT_POLICY", "default")

import torch  # noqa: E402

from selfsup import augment
from selfsup.train.speed import keep_freed_memory

MEAN, STD = [0.49, 0.48, 0.45], [0.25, 0.24, 0.26]


def images_per_second(run_batch, batch_size: int, steps: int, seconds: float, warmup: int = 2) -> float:
    """Images/s over at least ``steps`` batches and at least ``seconds``, after ``warmup``."""
    for _ in range(warmup):
        run_batch()
    started, done = time.perf_counter(), 0
    while done < steps or time.perf_counter() - started < seconds:
        run_batch()
        done += 1
    return batch_size * done / (time.perf_counter() - started)


def selfsup_pipeline(images: torch.Tensor, size: int, batch_size: int):
    recipe = augment.create("simclr", size)
    state = {"step": 0}

    def run_batch():
        state["step"] += 1
        start = (state["step"] * batch_size) % (len(images) - batch_size)
        generator = torch.Generator().manual_seed(state["step"])
        return recipe(images[start:start + batch_size], generator, MEAN, STD)
    return run_batch


def torchvision_transform(size: int):
    from torchvision.transforms import v2

    steps = [v2.RandomResizedCrop(size, scale=(0.08, 1.0), antialias=True), v2.RandomHorizontalFlip(),
             v2.RandomApply([v2.ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8), v2.RandomGrayscale(0.2)]
    if size > 32:
        kernel = max(3, int(0.1 * size) // 2 * 2 + 1)
        steps.append(v2.RandomApply([v2.GaussianBlur(kernel, (0.1, 2.0))], p=0.5))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
    return v2.Compose(steps)


class TwoViews(torch.utils.data.Dataset):
    def __init__(self, images, transform):
        self.images, self.transform = images, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.transform(self.images[i])


def _one_thread(_):
    torch.set_num_threads(1)


def torchvision_pipeline(images: torch.Tensor, size: int, batch_size: int, workers: int):
    loader = torch.utils.data.DataLoader(
        TwoViews(images, torchvision_transform(size)), batch_size=batch_size, shuffle=True,
        num_workers=workers, worker_init_fn=_one_thread, persistent_workers=True, drop_last=True,
        prefetch_factor=2)
    state = {"iterator": iter(loader)}

    def run_batch():
        try:
            return next(state["iterator"])
        except StopIteration:
            state["iterator"] = iter(loader)
            return next(state["iterator"])
    return run_batch


def kornia_pipeline(images: torch.Tensor, size: int, batch_size: int):
    import kornia.augmentation as K

    steps = [K.RandomResizedCrop((size, size), scale=(0.08, 1.0)), K.RandomHorizontalFlip(),
             K.ColorJitter(0.8, 0.8, 0.8, 0.2, p=0.8), K.RandomGrayscale(p=0.2)]
    if size > 32:
        kernel = max(3, int(0.1 * size) // 2 * 2 + 1)
        steps.append(K.RandomGaussianBlur((kernel, kernel), (0.1, 2.0), p=0.5))
    steps.append(K.Normalize(torch.tensor(MEAN), torch.tensor(STD)))
    transform = K.AugmentationSequential(*steps)
    state = {"step": 0}

    def run_batch():
        state["step"] += 1
        start = (state["step"] * batch_size) % (len(images) - batch_size)
        x = images[start:start + batch_size].float().div_(255)
        return transform(x), transform(x)
    return run_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and sizes (< 3 min)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="*", default=None, help="default 32 96 224 (quick: 32 96)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="least time per pipeline and round (default 3; quick 1.5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per size; the median is reported")
    parser.add_argument("--default-allocator", action="store_true",
                        help="glibc's malloc defaults for every pipeline instead of keep_freed_memory")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    allocator = "glibc default" if args.default_allocator or not keep_freed_memory() else "keep_freed_memory"
    seconds = args.seconds or (1.5 if args.quick else 3.0)
    sizes = args.sizes or ([32, 96] if args.quick else [32, 96, 224])
    results = {}
    for size in sizes:
        source_side = {32: 32, 96: 96, 224: 256}.get(size, size)  # stored images a bit larger than views at 224
        count = 4 * args.batch_size if size <= 96 else 2 * args.batch_size
        images = torch.randint(0, 256, (count, 3, source_side, source_side), dtype=torch.uint8,
                               generator=torch.Generator().manual_seed(0))
        steps = {32: 20, 96: 6, 224: 3}.get(size, 3) // (2 if args.quick else 1) or 1
        pipelines = {"selfsup": lambda: selfsup_pipeline(images, size, args.batch_size),
                     "torchvision": lambda: torchvision_pipeline(images, size, args.batch_size, args.threads),
                     "kornia": lambda: kornia_pipeline(images, size, args.batch_size)}
        speeds = {name: [] for name in pipelines}
        for round_ in range(args.rounds):  # interleaved, so a slow spell of the machine hits all alike
            for name, build in pipelines.items():
                speeds[name].append(images_per_second(build(), args.batch_size, max(2, steps), seconds))
                print(f"{size:>4} px  round {round_ + 1}  {name:<12} {speeds[name][-1]:>10.0f} images/s  "
                      f"allocator: {allocator}  load={os.getloadavg()}", flush=True)
        results[str(size)] = {name: round(statistics.median(values), 1) for name, values in speeds.items()}
        print(f"{size:>4} px  median of {args.rounds} rounds: {results[str(size)]}", flush=True)
    at32 = results.get("32", results[str(sizes[0])])
    summary = {"batch_size": args.batch_size, "threads": args.threads, "allocator": allocator,
               "images_per_second": results,
               "ratio_vs_torchvision": round(at32["selfsup"] / at32["torchvision"], 2),
               "ratio_vs_kornia": round(at32["selfsup"] / at32["kornia"], 2),
               "ratios_by_size": {s: {"vs_torchvision": round(r["selfsup"] / r["torchvision"], 2),
                                      "vs_kornia": round(r["selfsup"] / r["kornia"], 2)}
                                  for s, r in results.items()},
               "omp_wait_policy": WAIT_POLICY, "loadavg": os.getloadavg()}
    print("RESULT " + json.dumps(summary))


if __name__ == "__main__":
    main()
