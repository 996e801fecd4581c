"""One self-contained HTML report per run (``report.html``): configuration, results beside
the random-weights baseline, training curves, label-free monitors, a 2-D map of the
embeddings, nearest-neighbour grids and the files that were skipped. Images are embedded
as base64 PNG, so the file opens from disk with nothing else.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

import numpy as np

from selfsup import modalities
from selfsup.atomic import write_text

MAP_SAMPLES = 1500
QUERIES, NEIGHBOURS = 6, 8


def _png(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def curves_figure(records: list[dict]):
    import matplotlib.pyplot as plt

    panels = [("loss_step", "loss"), ("lr", "learning rate"), ("rankme", "RankMe"),
              ("uniformity", "uniformity"), ("alignment", "alignment"), ("embedding_std", "normalised std")]
    panels = [(key, title) for key, title in panels if any(key in r for r in records)]
    figure, axes = plt.subplots(1, max(1, len(panels)), figsize=(3.2 * max(1, len(panels)), 2.6))
    for axis, (key, title) in zip(np.atleast_1d(axes), panels):
        points = [(r["step"], r[key]) for r in records if key in r]
        axis.plot(*zip(*points), marker="." if len(points) < 50 else None)
        axis.set_title(title)
        axis.set_xlabel("step")
    return figure


def map_figure(embeddings: np.ndarray, labels, classes):
    """t-SNE of the embeddings (cosine), coloured by label when there are labels."""
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    points = TSNE(n_components=2, metric="cosine", init="pca", random_state=0,
                  perplexity=min(30, len(embeddings) - 1)).fit_transform(embeddings)
    figure, axis = plt.subplots(figsize=(6, 5))
    if labels is None:
        axis.scatter(points[:, 0], points[:, 1], s=4)
    else:
        scatter = axis.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=4)
        handles, _ = scatter.legend_elements(num=None)
        axis.legend(handles, classes[:len(handles)], fontsize=7, loc="best", markerscale=0.8)
    axis.set_xticks([])
    axis.set_yticks([])
    axis.set_title("t-SNE of the embeddings")
    return figure


def _table(rows) -> str:
    return "<table>" + "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                               for k, v in rows) + "</table>"


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def build_report(run_dir: str | os.PathLike, accelerator: str | None = None, devices: str | None = None) -> Path:
    """Write ``run_dir/report.html`` from the run's files and its last checkpoint (embedding
    on ``accelerator``/``devices``; default: the run's where available, else CPU)."""
    from selfsup.evaluate.neighbours import NeighborIndex
    from selfsup.evaluate.protocols import embed_images
    from selfsup.runs import Run, evaluation_rows

    run = Run(run_dir)
    run_dir, config, method = run.directory, run.config, run.method()
    where = run.placement(accelerator, devices)
    summary, records = run.summary, run.metrics()
    source, train, test = run.data()
    thumbnail = modalities.get(source.modality).thumbnail
    shown = test if test is not None else train
    generator = np.random.default_rng(0)
    subset = np.sort(generator.choice(len(shown), min(MAP_SAMPLES, len(shown)), replace=False))
    shown = shown.subset(subset)
    embeddings = embed_images(method, shown.samples, config.mean, config.std, placement=where)
    rows = evaluation_rows(len(train))  # the evaluation's rule: a bounded bank of training rows
    bank_source = train if rows is None else train.subset(rows)
    bank = embed_images(method, bank_source.samples, config.mean, config.std, placement=where)

    queries = generator.choice(len(shown), min(QUERIES, len(shown)), replace=False)
    similarities, positions = NeighborIndex("flat").fit(bank.numpy()).search(embeddings[queries].numpy(), NEIGHBOURS)
    grids = []
    for q, found, similarity in zip(queries, positions, similarities):
        cells = [f'<figure class="query"><img src="{thumbnail(shown.samples[q], config.mean, config.std)}" alt="query">'
                 f"<figcaption>query {html.escape(shown.ids[q])}</figcaption></figure>"]
        cells += [f'<figure><img src="{thumbnail(bank_source.samples[i], config.mean, config.std)}" alt="neighbour">'
                  f"<figcaption>{s:.2f}</figcaption></figure>" for i, s in zip(found.tolist(), similarity)]
        grids.append(f'<div class="grid">{"".join(cells)}</div>')

    labels = None if shown.labels is None else shown.labels.numpy()
    results = [(key, _fmt(summary.get(key))) for key in
               ("knn_top1", "baseline_knn_top1", "linear_top1", "baseline_linear_top1", "rankme",
                "baseline_rankme", "seconds")]
    skipped = summary.get("skipped", [])
    skipped_html = ("<ul>" + "".join(f"<li>{html.escape(s['file'])}: {html.escape(s['reason'])}</li>"
                                     for s in skipped) + "</ul>") if skipped else "<p>none</p>"
    curves = f'<img class="plot" src="{_png(curves_figure(records))}" alt="training curves">' if records else "<p>no metrics logged</p>"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>selfsup run: {html.escape(run_dir.name)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1em; }}
th, td {{ border: 1px solid #ccc; padding: 2px 8px; text-align: left; font-size: 13px; }}
.grid {{ display: flex; gap: 4px; margin-bottom: 8px; }}
figure {{ margin: 0; text-align: center; font-size: 11px; }}
figure.query img {{ outline: 3px solid #d33; }}
img.plot {{ max-width: 100%; }}
</style></head><body>
<h1>{html.escape(config.method)} on {html.escape(config.data)}</h1>
<p>{html.escape(summary.get("protocol", ""))}</p>
<h2>Results</h2>{_table(results)}
<h2>Training curves</h2><section id="curves">{curves}</section>
<h2>Embedding map</h2><section id="map"><img class="plot" src="{_png(map_figure(embeddings.numpy(), labels, shown.classes or []))}" alt="embedding map"></section>
<h2>Nearest neighbours</h2><p>Queries from the {"test" if test is not None else "training"} images (red), their most similar training images with cosine similarity (among {len(bank_source):,} training images{"" if rows is None else f", drawn at random (seed 0) from {len(train):,}"}).</p>
<section id="neighbours">{"".join(grids)}</section>
<h2>Skipped files</h2><section id="skipped">{skipped_html}</section>
<h2>Configuration</h2>{_table((k, v) for k, v in config.to_dict().items() if k not in ("mean", "std"))}
</body></html>
"""
    path = run_dir / "report.html"
    write_text(path, page)
    return path
