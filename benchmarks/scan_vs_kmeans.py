"""SCAN against k-means on the same embeddings (issue 19).

For each ``NAME=RUN[,DATA]`` (a run directory, and the data it embeds; default the run's
data), with k = the number of classes: k-means (``selfsup.evaluate.clustering.kmeans``,
n_init 10) and SCAN on the frozen embeddings (``selfsup.tasks.cluster.SCAN``: 10 heads,
4 augmented views), before and after self-labelling; with ``--backbone-epochs E`` also SCAN
with the backbone updated for E epochs (``SCAN.fit_backbone``) and k-means on the
embeddings of that updated backbone. Hungarian accuracy throughout. ``--seeds`` repeats
k-means and SCAN (initialisations, heads, augmented views) on the same embeddings per seed
and ends each set with the mean and range over seeds, and SCAN's margin over k-means.

    selfsup pretrain --data digits --epochs 30 --out /tmp/scan/digits --no-report
    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/scan_vs_kmeans.py digits=/tmp/scan/digits \\
        cifar10=/tmp/scan/cifar,/tmp/c10/cifar10-jpg/test [--backbone-epochs 10] [--only digits] [--seeds 0 1 2]

Prints one Markdown row per set and a final ``RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from selfsup.evaluate.clustering import hungarian_accuracy, kmeans
from selfsup.tasks.cluster import SCAN, mine_neighbours
from selfsup.tasks.common import embed_augmented, load_embeddings


def measure(embedded, backbone_epochs: int, views: int = 4, seed: int = 0) -> dict:
    started = time.perf_counter()
    k = len(np.unique(embedded.labels))
    accuracy = lambda clusters: round(hungarian_accuracy(embedded.labels, clusters), 3)  # noqa: E731
    neighbours = mine_neighbours(embedded.embeddings, 20)  # SCAN's; their purity bounds what it can do
    purity = round(float((embedded.labels[neighbours] == embedded.labels[:, None]).mean()), 3)
    result = {"samples": len(embedded), "clusters": k, "neighbour_purity": purity,
              "kmeans": accuracy(kmeans(embedded.embeddings, k, seed))}
    scan = SCAN(k, seed=seed).fit(embedded.embeddings, embed_augmented(embedded, views, seed))
    result.update(scan=accuracy(scan.scan_labels_), scan_self_label=accuracy(scan.labels_),
                  confident=round(scan.self_labelled_, 3))
    if backbone_epochs:
        tuned = SCAN(k, seed=seed).fit_backbone(embedded, views, backbone_epochs)
        result.update(backbone_frozen_head=accuracy(tuned.frozen_labels_), backbone_scan=accuracy(tuned.scan_labels_), backbone_scan_self_label=accuracy(tuned.labels_),
                      backbone_kmeans=accuracy(kmeans(tuned.embedded_.embeddings, k, seed)))
    result["seconds"] = round(time.perf_counter() - started)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="+", metavar="NAME=RUN[,DATA]")
    parser.add_argument("--backbone-epochs", type=int, default=0, help="also SCAN with the backbone updated")
    parser.add_argument("--only", nargs="*", help="names to measure")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds of k-means and SCAN, on the same embeddings")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 1)))
    print(f"load average at start {os.getloadavg()}")
    print("| set | seed | samples | k | same-class share of 20 neighbours | k-means | SCAN | SCAN + self-label | backbone updated: SCAN "
          "| + self-label | k-means on it | s |\n|---|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    results = {}
    for spec in args.sets:
        name, _, where = spec.partition("=")
        if args.only and name not in args.only:
            continue
        run, _, data = where.partition(",")
        embedded = load_embeddings(run, data or None)
        results[name] = {}
        for seed in args.seeds:
            r = results[name][seed] = measure(embedded, args.backbone_epochs, seed=seed)
            tuned = [r.get(key, "n/a") for key in ("backbone_scan", "backbone_scan_self_label", "backbone_kmeans")]
            print(f"| {name} | {seed} | {r['samples']} | {r['clusters']} | {r['neighbour_purity']} | {r['kmeans']} | {r['scan']} "
                  f"| {r['scan_self_label']} | " + " | ".join(str(t) for t in tuned) + f" | {r['seconds']} |", flush=True)
        if len(args.seeds) > 1:
            runs = list(results[name].values())
            spread = {key: (round(float(np.mean([r[key] for r in runs])), 3), min(r[key] for r in runs), max(r[key] for r in runs))
                      for key in ("kmeans", "scan", "scan_self_label")}
            margins = [round(r["scan_self_label"] - r["kmeans"], 3) for r in runs]
            print(f"{name} over seeds {args.seeds}: " + ", ".join(f"{key} {m} [{lo}, {hi}]" for key, (m, lo, hi) in spread.items())
                  + f"; SCAN + self-label minus k-means per seed {margins}, above in {sum(m > 0 for m in margins)} of {len(margins)}",
                  flush=True)
    print(f"load average at end {os.getloadavg()}")
    print("RESULT " + json.dumps(results))


if __name__ == "__main__":
    main()
