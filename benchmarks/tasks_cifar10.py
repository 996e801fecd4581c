"""Measure the tasks of issue 7 on a pretrained run and print the figures for BENCHMARKS.md.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python benchmarks/tasks_cifar10.py RUN_DIR [--data DATA]

RUN_DIR: a run from `selfsup pretrain` (digits, or a CIFAR-10 folder with labels in
sub-folders); DATA: the labelled source to measure on (default: the run's). Prints
nearest-neighbour search times (flat vs HNSW), planted-duplicate recall, k-means vs SCAN,
curation class entropy, the few-label accuracy curve, and TENT gains on corruptions.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def search_times(sizes=(10_000, 50_000), dim=256, queries=1000, k=10) -> None:
    """Flat vs HNSW on vectors with neighbour structure like embeddings' (a 16-dimensional
    manifold in 256 dimensions plus noise); isotropic random vectors have none, and there
    every method's "neighbours" are arbitrary."""
    from selfsup.evaluate.neighbours import NeighborIndex

    rng = np.random.default_rng(0)
    basis = rng.normal(size=(16, dim)).astype(np.float32)
    print("\n## nearest neighbours: time for 1000 queries, k=10, d=256 (16-dim manifold + noise, 1 thread)")
    print("| samples | flat (exact) s | HNSW build s | HNSW query s | HNSW recall@10 |")
    print("|---|---|---|---|---|")
    for n in sizes:
        x = rng.normal(size=(n, 16)).astype(np.float32) @ basis + 0.3 * rng.normal(size=(n, dim)).astype(np.float32)
        q = x[:queries] + 0.3 * rng.normal(size=(queries, dim)).astype(np.float32)
        flat = NeighborIndex("flat").fit(x)
        started = time.perf_counter()
        _, exact = flat.search(q, k)
        flat_s = time.perf_counter() - started
        started = time.perf_counter()
        hnsw = NeighborIndex("hnsw").fit(x)
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        _, approximate = hnsw.search(q, k)
        hnsw_s = time.perf_counter() - started
        recall = np.mean([len(set(a) & set(e)) / k for a, e in zip(approximate, exact)])
        print(f"| {n:,} | {flat_s:.3f} | {build_s:.1f} | {hnsw_s:.3f} | {recall:.3f} |", flush=True)


def planted_duplicates(run_dir, source, count=50) -> None:
    from selfsup.tasks.dedupe import dedupe

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        images = source.images[:1000].permute(0, 2, 3, 1).numpy()
        for i, image in enumerate(images):
            Image.fromarray(image).save(folder / f"{i:05d}.png")
        planted = []
        for i in range(count):
            (folder / f"copy-{i:05d}.png").write_bytes((folder / f"{i:05d}.png").read_bytes())
            picture = Image.fromarray(images[count + i])
            picture.point(lambda v: min(255, int(v * 1.1))).save(folder / f"aug-{i:05d}.jpg", quality=90)
            planted += [(f"{i:05d}.png", f"copy-{i:05d}.png"), (f"{count + i:05d}.png", f"aug-{i:05d}.jpg")]
        print(f"\n## dedupe: 1000 images + {count} exact copies + {count} brightened JPEG copies")
        print("| cosine | threshold | planted pairs found | groups | samples in groups |")
        print("|---|---|---|---|---|")
        for center in (True, False):
            for threshold in (0.85, 0.9, 0.95):
                result = dedupe(run_dir, str(folder), threshold, center)
                group_of = {s: g for g, members in enumerate(result["groups"]) for s in members}
                found = np.mean([a in group_of and group_of.get(a) == group_of.get(b) for a, b in planted])
                print(f"| {'centred' if center else 'raw'} | {threshold} | {found:.2f} | {len(result['groups'])} "
                      f"| {sum(len(g) for g in result['groups'])} |", flush=True)


def clustering(run_dir, data) -> None:
    from selfsup.tasks.cluster import cluster

    started = time.perf_counter()
    result = cluster(run_dir, data, n_clusters=None, views=0)
    estimated = result["clusters"]
    result = cluster(run_dir, data, n_clusters=result["classes"], views=4)
    print(f"\n## clustering ({result['classes']} classes; eigengap estimate of k: {estimated}; "
          f"{time.perf_counter() - started:.0f} s)")
    print("| | accuracy (Hungarian) | NMI | ARI |\n|---|---|---|---|")
    for name in ("kmeans", "scan"):
        m = result[name]
        print(f"| {name} | {m['accuracy']:.3f} | {m['nmi']:.3f} | {m['ari']:.3f} |", flush=True)


def curation(embedded) -> None:
    from selfsup.tasks.curate import HierarchicalCurator, class_entropy

    rng = np.random.default_rng(0)
    classes = np.unique(embedded.labels)
    largest = np.bincount(embedded.labels).min()
    keep = np.concatenate([rng.permutation(np.flatnonzero(embedded.labels == c))[:max(3, int(largest / 1.6 ** i))]
                           for i, c in enumerate(classes)])
    x, labels = embedded.embeddings[keep], embedded.labels[keep]
    budget = len(keep) // 4
    print(f"\n## curation: imbalanced subset ({len(keep)} samples, class c keeps 1/1.6^c), budget {budget}; "
          f"class entropy (max {np.log(len(classes)):.3f}), mean of 5 seeds")
    curated = [class_entropy(labels[HierarchicalCurator(seed=s).fit(x).select(budget)]) for s in range(5)]
    random = [class_entropy(labels[np.random.default_rng(s).choice(len(x), budget, replace=False)]) for s in range(5)]
    print(f"| whole imbalanced set | random subset | curated subset |\n|---|---|---|\n"
          f"| {class_entropy(labels):.3f} | {np.mean(random):.3f} ± {np.std(random):.3f} "
          f"| {np.mean(curated):.3f} ± {np.std(curated):.3f} |", flush=True)


def few_labels(run_dir, data, shots, steps, out) -> Path:
    from selfsup.tasks.finetune import finetune

    print(f"\n## few labels: test accuracy on the fixed 20% holdout ({steps} steps each)")
    print("| labels per class | linear head | linear + FixMatch | from scratch (full) |\n|---|---|---|---|")
    for n in shots:
        started = time.perf_counter()
        linear = finetune(run_dir, n, data, "linear", steps=steps, scratch=True, out=out if n == shots[1] else None)
        pseudo = finetune(run_dir, n, data, "linear", pseudo_label=True, steps=steps, batch_size=20,
                          unlabeled_ratio=3) if n == 5 else None
        if n == 5:  # the same schedule without pseudo-labels, for a fair comparison
            pseudo_baseline = finetune(run_dir, n, data, "linear", steps=steps, batch_size=20)["test_accuracy"]
        print(f"| {n} | {linear['test_accuracy']:.3f} | "
              f"{'n/a' if pseudo is None else format(pseudo['test_accuracy'], '.3f')} | "
              f"{linear['scratch_test_accuracy']:.3f} |  <!-- {time.perf_counter() - started:.0f} s -->", flush=True)
    print(f"FixMatch at 5 labels per class: batch 20 labelled + 3 x 20 unlabelled a step; the same "
          f"schedule without pseudo-labels: {pseudo_baseline:.3f}")
    return out


def adaptation(classifier, data) -> None:
    from selfsup.tasks.adapt import adapt

    print(f"\n## TENT on corrupted copies of {data} (severity 3; classifier: linear head, {classifier.name})")
    print("| corruption | unadapted | test-time BN | TENT |\n|---|---|---|---|")
    for kind in ("noise", "blur", "contrast"):
        r = adapt(classifier, data, kind, 3)
        print(f"| {kind} | {r['accuracy_source_model']:.3f} | {r['accuracy_test_time_bn']:.3f} "
              f"| {r['accuracy_tent']:.3f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--data")
    parser.add_argument("--shots", default="1,5,10,100", help="must include 5")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--sections", default="search,dedupe,cluster,curate,finetune",
                        help="which to measure (finetune includes TENT, which needs its classifier)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import faiss

    faiss.omp_set_num_threads(1)
    print(f"run {args.run}, data {args.data or 'the run`s'}; load average at start {os.getloadavg()}")
    started = time.perf_counter()
    from selfsup.tasks.common import load_embeddings

    sections = args.sections.split(",")
    if "search" in sections:
        search_times()
    embedded = load_embeddings(args.run, args.data)
    if "dedupe" in sections:
        planted_duplicates(args.run, embedded.source)
    if "cluster" in sections:
        clustering(args.run, args.data)
    if "curate" in sections:
        curation(embedded)
    if "finetune" in sections:
        shots = [int(s) for s in args.shots.split(",")]
        classifier = few_labels(args.run, args.data, shots, args.steps, Path(tempfile.mkdtemp()) / "classifier")
        from selfsup.config import PretrainConfig

        adaptation(classifier, args.data or PretrainConfig.load(Path(args.run) / "config.yaml").data)
    print(f"\ntotal {time.perf_counter() - started:.0f} s; load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
