import numpy as np
import torch

from selfsup.cli import run
from selfsup.evaluate.clustering import cluster_metrics
from selfsup.tasks.cluster import SCAN, cluster, estimate_clusters, scan_loss


def separated(n=600, classes=6, d=32, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, d)) * 4
    labels = np.repeat(np.arange(classes), n // classes)
    return (centres[labels] + rng.normal(size=(len(labels), d))).astype(np.float32), labels


def test_scan_loss_is_its_formula():
    anchors, neighbours = torch.randn(8, 4), torch.randn(8, 4)
    loss, consistency, entropy = scan_loss(anchors, neighbours, 5.0)
    p, q = anchors.softmax(1), neighbours.softmax(1)
    mean = p.mean(0)
    assert torch.isclose(consistency, -torch.log((p * q).sum(1)).mean())
    assert torch.isclose(entropy, -(mean * mean.log()).sum())
    assert torch.isclose(loss, consistency - 5.0 * entropy)


def test_scan_and_eigengap_on_a_well_separated_embedding():
    x, labels = separated()
    assert estimate_clusters(x) == 6
    scan = SCAN(6, epochs=30, self_label_epochs=5).fit(x)
    assert cluster_metrics(labels, scan.labels_)["accuracy"] > 0.98
    assert (scan.predict(x) == scan.labels_).all() and scan.predict_proba(x).shape == (600, 6)


def test_cluster_a_run_on_digits(digits_run, tmp_path, capsys):
    result = cluster(digits_run, n_clusters=10, views=1, epochs=30, self_label_epochs=5, out=tmp_path / "c.tsv")
    assert result["samples"] == 1797 and len(result["scan_ids"]) == 1797
    for name in ("kmeans", "scan"):
        assert set(result[name]) == {"accuracy", "nmi", "ari"}
        assert result[name]["accuracy"] > 0.3  # chance is about 0.1
    assert (tmp_path / "c.tsv").read_text().splitlines()[0] == "id\tkmeans\tscan"
    embeddings = tmp_path / "e.npy"
    run(["embed", str(digits_run), "--out", str(embeddings)])
    run(["cluster", str(embeddings), "--epochs", "5"])  # no labels, k estimated
    out = capsys.readouterr().out
    assert '"clusters_estimated": true' in out and '"scan"' not in out
