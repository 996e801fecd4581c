"""Stream mode against memory mode and torchvision (issue 18): index, decode, RSS, step time.

Three measurements, each in its own child process so that peak RSS is the stage's own:

- **index**: ``index_folder`` (parallel ``os.scandir``) on a folder of N tiny files in N/1000
  sub-folders, beside a sorted ``Path.rglob`` walk of the same folder (what the in-memory
  folder loader and most tools do).
- **throughput**: decode + two 224 px random-resized crops per image from 500x375 JPEGs with
  2 DataLoader workers: selfsup's ``StreamViews`` (JPEG draft mode, crops from the full image)
  against torchvision's ``ImageFolder`` + ``RandomResizedCrop(224)`` twice (+ ``PILToTensor``,
  uint8 like ours), batch 64, images per second over every image.
- **train**: ``prepare`` + ``fit`` of ``pretrain`` (training only: the evaluation after it
  embeds at most 50,000 rows, twice, batch by batch; the whole ``pretrain`` of 20 steps on
  5,000 streamed images took 580 s at load 14, peak RSS 2,016 MB, most of it evaluation) on unlabeled folders of 256 px JPEGs (256 x 256..384) of each size, in stream and in
  memory mode, ``smallcnn`` at 64 px, batch 256, ``--steps`` optimizer steps, default workers:
  the training process's peak RSS and the largest DataLoader worker's, and the seconds per
  step (median of the steps after the first 3, timed by a callback).

Prints one line per figure and a ``RESULT {json}`` line. The default is short; the issue's
sizes are ``--full`` (1,000,000 files to index, folders of 5,000 and 50,000 images, 20 steps):

    python benchmarks/streaming.py                       # short: 100k files, 2k/8k images
    python benchmarks/streaming.py --full --work /tmp/streaming
    python benchmarks/streaming.py --full --only index   # one measurement

Generated data is kept in ``--work`` (default /tmp/selfsup-streaming) and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np


# --------------------------------------------------------------------------- data

def _tiny_files(args):
    folder, start, count = args
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        (folder / f"{i:07d}.jpg").write_bytes(b"\xff\xd8")  # the index does not decode


def make_tiny_folder(root: Path, count: int) -> Path:
    marker = root / f".made-{count}"
    if not marker.exists():
        per = 1000
        jobs = [(root / f"{d:04d}", d * per, min(per, count - d * per)) for d in range((count + per - 1) // per)]
        with Pool(2) as pool:
            pool.map(_tiny_files, jobs, chunksize=8)
        marker.write_text("")
    return root


def _jpegs(args):
    from PIL import Image

    folder, start, count, width, height = args
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(start)
    for i in range(start, start + count):
        w = width if width else int(rng.integers(256, 385))
        # smooth colour fields plus grain: JPEG sizes like photographs', not like noise or flat colour
        low = rng.random((4, 4, 3)) * 255
        image = Image.fromarray(low.astype(np.uint8)).resize((w, height), Image.Resampling.BICUBIC)
        pixels = np.asarray(image, dtype=np.int16) + rng.integers(-12, 13, (height, w, 3))
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{i:06d}.jpg", quality=90)


def make_jpeg_folder(root: Path, count: int, width: int | None, height: int, classes: int = 0) -> Path:
    """``count`` JPEGs (width x height; width None: 256..384), in ``classes`` sub-folders."""
    marker = root / f".made-{count}"
    if not marker.exists():
        per = 500
        jobs = [(root / (f"class{(s // per) % classes}" if classes else f"part{s // 5000:03d}"), s, min(per, count - s),
                 width, height) for s in range(0, count, per)]
        with Pool(2) as pool:
            pool.map(_jpegs, jobs)
        marker.write_text("")
    return root


# --------------------------------------------------------------------------- children

def child_index(root: str) -> dict:
    from selfsup.data.stream import index_folder

    started = time.perf_counter()
    files, _, _ = index_folder(Path(root))
    ours = time.perf_counter() - started
    started = time.perf_counter()
    walked = sorted(p for p in Path(root).rglob("*") if p.suffix == ".jpg" and p.is_file())
    peer = time.perf_counter() - started
    assert len(walked) == len(files)
    return {"files": len(files), "index_seconds": round(ours, 2), "rglob_seconds": round(peer, 2)}


def _two_views(transform):
    return lambda image: (transform(image), transform(image))


def child_throughput(root: str, workers: int) -> dict:
    import torch
    from torchvision import datasets, transforms

    from selfsup.data.stream import StreamViews, open_stream

    torch.set_num_threads(1)
    source = open_stream(Path(root), 224)
    dataset = StreamViews(source, [(224, (0.08, 1.0)), (224, (0.08, 1.0))], seed=0)
    batches = [(0, list(range(s, min(s + 64, len(source))))) for s in range(0, len(source), 64)]
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, sampler=batches, num_workers=workers)
    started = time.perf_counter()
    count = sum(len(views[0]) for views, _, _ in loader)
    ours = count / (time.perf_counter() - started)

    crop = transforms.Compose([transforms.RandomResizedCrop(224), transforms.PILToTensor()])
    folder = datasets.ImageFolder(root, transform=_two_views(crop))
    loader = torch.utils.data.DataLoader(folder, batch_size=64, num_workers=workers)
    started = time.perf_counter()
    count = sum(len(views[0]) for views, _ in loader)
    peer = count / (time.perf_counter() - started)
    return {"images": count, "stream_images_per_s": round(ours, 1), "torchvision_images_per_s": round(peer, 1),
            "ratio": round(ours / peer, 2)}


def _config(root: str, mode: str, steps: int, out: str):
    from selfsup.config import PretrainConfig

    return PretrainConfig(data=root, data_mode=mode, image_size=64, backbone="smallcnn", batch_size=256, epochs=100,
                          warmup_epochs=0, max_steps=steps, holdout=0, report=False, out=out)  # every image trains


def child_steps(root: str, mode: str, steps: int, out: str) -> dict:
    import lightning as L

    from selfsup.train import fit, prepare

    class StepTimer(L.Callback):
        def __init__(self):
            self.times = []

        def on_train_batch_end(self, *args):
            self.times.append(time.perf_counter())

    timer = StepTimer()
    prepared = prepare(_config(root, mode, steps, out))
    try:
        fit(prepared, callbacks=[timer])
    finally:
        prepared.release()
    per_step = np.diff(timer.times)[3:]
    return {"mode": mode, "samples": len(prepared.train), "steps": len(timer.times),
            "seconds_per_step": round(float(np.median(per_step)), 3),
            "mean_seconds_per_step": round(float(np.mean(per_step)), 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "worker_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)}


def run_child(*args) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(args)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"child {args[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the issue's sizes: 1M files, 5k and 50k images, 20 steps")
    parser.add_argument("--work", default="/tmp/selfsup-streaming", help="where generated data is kept")
    parser.add_argument("--only", default="index,throughput,train")
    parser.add_argument("--index-files", type=int, default=None)
    parser.add_argument("--throughput-images", type=int, default=None)
    parser.add_argument("--sizes", type=int, nargs=2, default=None, help="the two folder sizes of the training runs")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, *rest = json.loads(args.child)
        print(json.dumps(globals()[f"child_{name}"](*rest)))
        return

    files = args.index_files or (1_000_000 if args.full else 100_000)
    throughput_images = args.throughput_images or (1000 if args.full else 300)
    small, large = args.sizes or ((5000, 50_000) if args.full else (2000, 8000))
    steps = args.steps or (20 if args.full else 6)
    work, only = Path(args.work), args.only.split(",")
    result = {"load_before": os.getloadavg()[0]}

    if "index" in only:
        root = make_tiny_folder(work / f"tiny-{files}", files)
        result["index"] = run_child("index", str(root))
        print(f"index {files:,} files: index_folder {result['index']['index_seconds']} s, "
              f"sorted rglob {result['index']['rglob_seconds']} s", flush=True)
    if "throughput" in only:
        root = make_jpeg_folder(work / f"jpeg500x375-{throughput_images}", throughput_images, 500, 375, classes=2)
        result["throughput"] = run_child("throughput", str(root), args.workers)
        t = result["throughput"]
        print(f"decode + 2 crops at 224 px, {args.workers} workers: stream {t['stream_images_per_s']} img/s, "
              f"torchvision {t['torchvision_images_per_s']} img/s, ratio {t['ratio']}x", flush=True)
    if "train" in only:
        folders = {n: make_jpeg_folder(work / f"jpeg256-{n}", n, None, 256) for n in (small, large)}
        result["train"] = []
        for mode in ("stream", "memory"):
            for n in (small, large):
                figure = run_child("steps", str(folders[n]), mode, steps, str(work / f"run-{mode}-{n}-{time.time_ns()}"))
                result["train"].append(figure)
                print(f"train {mode:6s} {n:6,} images: peak RSS {figure['peak_rss_mb']} MB (largest worker "
                      f"{figure['worker_peak_rss_mb']} MB), {figure['seconds_per_step']} s a step", flush=True)
        for mode in ("stream", "memory"):
            a, b = [f["peak_rss_mb"] for f in result["train"] if f["mode"] == mode]
            result[f"{mode}_rss_growth"] = round(b / a - 1, 3)
            print(f"{mode}: peak RSS {small:,} -> {large:,} images: {100 * (b / a - 1):+.1f}%", flush=True)
        stream, memory = (f["seconds_per_step"] for f in result["train"] if f["samples"] > small)
        result["stream_over_memory_step"] = round(stream / memory, 3)
        print(f"step time on {large:,} images, smallcnn 64 px, batch 256: stream {stream} s, memory {memory} s, "
              f"ratio {stream / memory:.2f}x", flush=True)
    result["load_after"] = os.getloadavg()[0]
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
