"""B3: what selfsup adds around the network. A full SimCLR training step (batched
augmentation of a uint8 batch into two views, backbone, projector, NT-Xent, backward,
LARS step) divided by the bare backbone forward+backward on two ready-made views of the
same batch. Also times the training switches (channels_last, bf16 autocast,
torch.compile of the backbone) on the bare backbone, the part they act on.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 .venv/bin/python benchmarks/step_overhead.py [--quick]

Both the step and the bare forward+backward run with selfsup's defaults for the backbone:
channels_last for CNNs and ``precision auto`` (bf16 autocast where the CPU has bf16 units),
and with ``keep_freed_memory``; ``--no-channels-last``, ``--precision 32`` and
``--default-allocator`` turn them off. The switch timings start from a plain fp32,
contiguous backbone. Random uint8 images; the step is timed in a plain loop (no Lightning
bookkeeping; B2 measures the Lightning loop end to end). Prints one line per timing, then
``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time

# OpenMP's wait policy is left as the environment sets it, as for `selfsup pretrain`. On a
# loaded machine, OMP_WAIT_POLICY=PASSIVE avoids threads spinning for a descheduled peer
# (16x slower 2-thread augmentation there); on a quiet one it costs batched augmentation
# ~40% (measured: 30k against 48k images/s at 32 px). The script prints which was in force.
WAIT_POLICY = os.environ.get("OMP_WAIT_POLICY", "default")

import torch  # noqa: E402

from selfsup import augment, backbones, methods
from selfsup.methods.optim import create_optimizer
from selfsup.devices import default_precision
from selfsup.train.speed import apply_speed_switches, default_channels_last, keep_freed_memory

MEAN, STD = [0.49, 0.48, 0.45], [0.25, 0.24, 0.26]


def seconds_per_call(function, steps: int, warmup: int = 2) -> float:
    """Median seconds of ``steps`` calls, after ``warmup`` calls (the machine is shared:
    the median resists another process's bursts better than the mean)."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def bare_backbone(backbone, views, precision="32", memory_format=torch.contiguous_format):
    views = [v.contiguous(memory_format=memory_format) for v in views]
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()

    def step():
        with autocast:
            loss = sum(backbone(v).float().mean() for v in views)
        loss.backward()
        backbone.zero_grad(set_to_none=True)
    return step


def full_step(method, recipe, images, optimizer, precision="32"):
    state = {"step": 0}
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()

    def step():
        state["step"] += 1
        views = recipe(images, torch.Generator().manual_seed(state["step"]), MEAN, STD)
        with autocast:
            loss = method.training_step(views)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, small CNN only (< 3 min)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backbones", nargs="*", default=None, help="default smallcnn resnet18 (quick: smallcnn)")
    parser.add_argument("--switches", action="store_true", help="also time channels_last, bf16, compile")
    parser.add_argument("--steps", type=int, default=None, help="timed calls each (default 10; quick 5)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                        help="channels_last for CNN backbones (selfsup's default)")
    parser.add_argument("--precision", choices=["auto", "32", "bf16"], default="auto",
                        help="auto: bf16 autocast where the CPU has bf16 units (selfsup's default)")
    parser.add_argument("--default-allocator", action="store_true",
                        help="glibc's malloc defaults instead of keep_freed_memory")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    allocator = "glibc default" if args.default_allocator or not keep_freed_memory() else "keep_freed_memory"
    precision = ("bf16" if default_precision() == "bf16-mixed" else "32") if args.precision == "auto" else args.precision
    steps = args.steps or (5 if args.quick else 10)
    names = args.backbones or (["smallcnn"] if args.quick else ["smallcnn", "resnet18"])
    images = torch.randint(0, 256, (args.batch_size, 3, args.image_size, args.image_size), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    recipe = augment.create("simclr", args.image_size)
    views = recipe(images, torch.Generator().manual_seed(0), MEAN, STD)
    results = {}
    for name in names:
        torch.manual_seed(0)
        method = methods.create("simclr", backbones.create(name, image_size=args.image_size))
        channels_last = args.channels_last and default_channels_last(name)
        apply_speed_switches(method, channels_last)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        optimizer = create_optimizer("lars", method, 0.3, 1e-6)
        row = {}
        row["augment_s"] = seconds_per_call(lambda: recipe(images, torch.Generator().manual_seed(1), MEAN, STD),
                                            steps)
        row["bare_s"] = seconds_per_call(bare_backbone(method.backbone, views, precision, memory_format), steps)
        row["step_s"] = seconds_per_call(full_step(method, recipe, images, optimizer, precision), steps)
        row["overhead_ratio"] = round(row["step_s"] / row["bare_s"], 3)
        if args.switches:  # each switch alone, from a plain fp32 contiguous backbone
            torch.manual_seed(0)
            method = methods.create("simclr", backbones.create(name, image_size=args.image_size))
            row["bare_plain_s"] = seconds_per_call(bare_backbone(method.backbone, views), steps)
            row["bare_channels_last_s"] = seconds_per_call(
                bare_backbone(method.backbone.to(memory_format=torch.channels_last), views,
                              memory_format=torch.channels_last), steps)
            method.backbone.to(memory_format=torch.contiguous_format)
            row["bare_bf16_s"] = seconds_per_call(bare_backbone(method.backbone, views, "bf16"), steps)
            compiled = torch.compile(method.backbone)
            row["bare_compile_s"] = seconds_per_call(bare_backbone(compiled, views), steps, warmup=3)
        results[name] = {k: round(v, 4) for k, v in row.items()}
        print(f"{name:<9} " + "  ".join(f"{k}={v:.4g}" for k, v in row.items()) + f"  load={os.getloadavg()}",
              flush=True)
    first = results[names[0]]
    print("RESULT " + json.dumps({"batch_size": args.batch_size, "image_size": args.image_size,
                                  "threads": args.threads, "steps": steps, "precision": precision,
                                  "channels_last": args.channels_last, "allocator": allocator,
                                  "overhead_ratio": first["overhead_ratio"], "backbones": results,
                                  "omp_wait_policy": WAIT_POLICY, "loadavg": os.getloadavg()}))


if __name__ == "__main__":
    main()
