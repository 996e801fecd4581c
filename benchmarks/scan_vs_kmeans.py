"""SCAN against k-means on the same embeddings (issue 19).

For each ``NAME=RUN[,DATA]`` (a run directory, and the data it embeds; default the run's
data), with k = the number of classes: k-means (``selfsup.evaluate.clustering.kmeans``,
n_init 10) and SCAN on the frozen embeddings (``selfsup.tasks.cluster.SCAN``: 10 heads,
4 augmented views), before and after self-labelling; with ``--backbone-epochs E`` also SCAN
with the backbone updated for E epochs (``SCAN.fit_backbone``) and k-means on the
embeddings of that updated backbone. Hungarian accuracy throughout.

    selfsup pretrain --data digits --epochs 30 --out /tmp/scan/digits --no-report
    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/scan_vs_kmeans.py digits=/tmp/scan/digits \\
        cifar10=/tmp/scan/cifar,/tmp/c10/cifar10-jpg/test [--backbone-epochs 10] [--only digits]

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


def measure(run, data, backbone_epochs: int, views: int = 4, seed: int = 0) -> dict:
    started = time.perf_counter()
    embedded = load_embeddings(run, data)
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
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 1)))
    print(f"load average at start {os.getloadavg()}")
    print("| set | samples | k | same-class share of 20 neighbours | k-means | SCAN | SCAN + self-label | backbone updated: SCAN | + self-label "
          "| k-means on it | s |\n|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    results = {}
    for spec in args.sets:
        name, _, where = spec.partition("=")
        if args.only and name not in args.only:
            continue
        run, _, data = where.partition(",")
        r = results[name] = measure(run, data or None, args.backbone_epochs)
        tuned = [r.get(key, "n/a") for key in ("backbone_scan", "backbone_scan_self_label", "backbone_kmeans")]
        print(f"| {name} | {r['samples']} | {r['clusters']} | {r['neighbour_purity']} | {r['kmeans']} | {r['scan']} "
              f"| {r['scan_self_label']} | " + " | ".join(str(t) for t in tuned) + f" | {r['seconds']} |", flush=True)
    print("RESULT " + json.dumps(results))


if __name__ == "__main__":
    main()
