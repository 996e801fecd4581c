"""Compare methods fairly: the same data, backbone, budget and evaluation protocol for all,
written as a Markdown and a CSV table."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from selfsup.atomic import check_output
from selfsup.config import ConfigError, PretrainConfig
from selfsup.evaluate.run import evaluate_run
from selfsup.evaluate.suite import PROTOCOLS

COLUMNS = ("method", "knn_top1", "baseline_knn_top1", "linear_top1", "5_shot", "cluster_acc", "nmi",
           "rankme", "sec_per_epoch", "seconds")


def benchmark(methods: list[str], data: str, epochs: int, out: str | os.PathLike, **options) -> list[dict]:
    """Pretrain each method with ``options`` shared (backbone, batch size, image size, seed)
    into ``out/<method>``, evaluate every protocol, and write ``out/results.md`` and
    ``out/results.csv``. Returns one row per method."""
    out = check_output(out, "folder")
    if not methods:
        raise ConfigError("methods: expected at least one method name")
    from selfsup.methods import METHODS

    unknown = [m for m in methods if m not in METHODS]
    if unknown:  # before the first method trains
        raise ConfigError(f"methods: {', '.join(map(repr, unknown))} not among {', '.join(METHODS)}")
    from selfsup.tasks import pretrain

    rows = []
    for method in methods:
        summary = pretrain(PretrainConfig(data=data, method=method, epochs=epochs, report=False,
                                          out=str(out / method), **options))
        full = evaluate_run(out / method, full=True)["pretrained"]
        five = full.get("few_shot", {}).get("5_shot", {})
        rows.append({
            "method": method, "knn_top1": summary["knn_top1"],
            "baseline_knn_top1": summary["baseline_knn_top1"], "linear_top1": summary["linear_top1"],
            "5_shot": five.get("mean"), "cluster_acc": full.get("clustering", {}).get("accuracy"),
            "nmi": full.get("clustering", {}).get("nmi"), "rankme": summary["rankme"],
            "sec_per_epoch": summary["train_seconds"] / epochs, "seconds": summary["seconds"],
            "backbone": summary["backbone"],
        })
        write_tables(rows, out, data, epochs, options)  # after each method: partial results survive
    return rows


def _cell(value) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def write_tables(rows: list[dict], out: Path, data: str, epochs: int, options: dict) -> None:
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*COLUMNS, "backbone"])
        writer.writeheader()
        writer.writerows(rows)
    setting = ", ".join(f"{k}={v}" for k, v in options.items())
    lines = [f"# Benchmark on {data}, {epochs} epochs" + (f" ({setting})" if setting else ""), "",
             "| " + " | ".join(COLUMNS) + " | backbone |", "|" + "---|" * (len(COLUMNS) + 1)]
    lines += ["| " + " | ".join(_cell(row[c]) for c in (*COLUMNS, "backbone")) + " |" for row in rows]
    lines += ["", "Protocols:", "", f"- kNN top-1 (k=20) and linear top-1: the run summary's protocol "
              "(fixed stratified 20% holdout excluded from pretraining)",
              f"- 5_shot: {PROTOCOLS['few_shot']}", f"- cluster_acc, nmi: {PROTOCOLS['clustering']}",
              "- rankme: RankMe of the training embeddings; sec_per_epoch: training wall time (steps, "
              "monitors, checkpoints) per epoch; seconds: the whole run (data, training, evaluations)", ""]
    (out / "results.md").write_text("\n".join(lines))
