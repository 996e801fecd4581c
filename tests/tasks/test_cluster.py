import numpy as np
import pytest
import torch

from selfsup.cli import run
from selfsup.config import ConfigError
from selfsup.evaluate.clustering import cluster_metrics, kmeans
from selfsup.tasks.cluster import SCAN, cluster, estimate_clusters, mine_neighbours, scan_loss


def separated(n=600, classes=6, d=32, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, d)) * 4
    labels = np.repeat(np.arange(classes), n // classes)
    return (centres[labels] + rng.normal(size=(len(labels), d))).astype(np.float32), labels


def lines(n=600, classes=4, length=10.0, gap=2.5, seed=0):
    """Parallel lines far longer than the gap between them (and an offset, so that the cosine
    is nearly Euclidean): k-means cuts across the lines, neighbours stay on one."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n // classes)
    x = np.zeros((len(labels), classes + 2), dtype=np.float32)
    x[:, 0] = 10
    x[np.arange(len(labels)), 1 + labels] = gap
    x[:, 1:-1] += rng.normal(size=(len(labels), classes)) * 0.2
    x[:, -1] = rng.uniform(-length, length, len(labels))
    return x, labels


def noisy_neighbours(x, k, wrong, seed=0):
    """Mined neighbours with a fraction ``wrong`` replaced by random samples."""
    rng = np.random.default_rng(seed)
    neighbours = mine_neighbours(x, k)
    replace = rng.random(neighbours.shape) < wrong
    neighbours[replace] = rng.integers(len(x), size=int(replace.sum()))
    return neighbours


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
    scan = SCAN(6, epochs=30, self_label_epochs=5, lr=1e-2).fit(x)
    assert cluster_metrics(labels, scan.labels_)["accuracy"] > 0.98
    assert (scan.predict(x) == scan.labels_).all() and scan.predict_proba(x).shape == (600, 6)


@pytest.mark.parametrize("data", [separated, lines])
def test_scan_matches_or_beats_kmeans_with_a_fifth_of_the_neighbours_wrong(data):
    x, labels = data()
    classes = len(np.unique(labels))
    by_kmeans = cluster_metrics(labels, kmeans(x, classes))["accuracy"]
    scan = SCAN(classes, epochs=30, self_label_epochs=5, lr=1e-2).fit(x, neighbours=noisy_neighbours(x, 20, 0.2))
    by_scan = cluster_metrics(labels, scan.labels_)["accuracy"]
    assert by_scan >= by_kmeans - 0.01 and by_scan > 0.95


def test_the_entropy_term_prevents_collapse():
    x, _ = separated()
    used = {}
    for weight in (0.0, 5.0):
        scan = SCAN(6, entropy_weight=weight, heads=1, epochs=30, self_label_epochs=0, lr=1e-2).fit(x)
        used[weight] = np.bincount(scan.labels_, minlength=6)
    assert (used[5.0] > 0).all() and used[5.0].min() > 50  # all six clusters, none tiny
    assert (used[0.0] == 0).any()  # without it, clusters merge and others empty


def test_of_several_heads_the_one_of_lowest_scan_loss_is_kept():
    x, labels = separated()
    scan = SCAN(6, heads=3, epochs=0, self_label_epochs=0)
    neighbours = scan._start(x).numpy()
    centres = np.stack([x[labels == c].mean(axis=0) for c in range(6)])
    good = torch.from_numpy(((centres - scan.heads_.mean.numpy()) / scan.heads_.scale.numpy()) * 10).float()
    with torch.no_grad():
        scan.heads_.linear.weight[6:12] = good  # head 1 is the true clustering, heads 0 and 2 random
        scan.heads_.linear.bias[6:12] = 0
    losses = scan.head_losses(x, neighbours)
    assert losses.argmin() == 1 and losses[1] < losses[[0, 2]].min() - 1
    scan._keep_best_head(x, neighbours)
    assert scan.best_head_ == 1 and cluster_metrics(labels, scan.predict(x))["accuracy"] > 0.98


def test_neighbours_given_must_fit_the_samples():
    x, _ = separated()
    with pytest.raises(ConfigError, match="neighbours"):
        SCAN(6, epochs=1).fit(x, neighbours=np.zeros((10, 3), dtype=int))


def test_updating_the_backbone_changes_a_copy_of_its_weights(digits_run):
    from selfsup.tasks.common import load_embeddings

    embedded = load_embeddings(digits_run)
    _, method = embedded.run
    before = {name: p.detach().clone() for name, p in method.named_parameters()}
    scan = SCAN(10, heads=2, epochs=2, self_label_epochs=1).fit_backbone(embedded, views=1, epochs=1)
    after = dict(scan.method_.named_parameters())
    assert any(not torch.equal(before[name], after[name]) for name in before)
    assert all(torch.equal(before[name], p) for name, p in method.named_parameters())  # the run's own is untouched
    assert len(scan.labels_) == len(embedded) and not np.allclose(scan.embedded_.embeddings, embedded.embeddings)


def test_cluster_a_run_on_digits(digits_run, tmp_path, capsys):
    result = cluster(digits_run, n_clusters=10, views=1, epochs=30, self_label_epochs=5, out=tmp_path / "c.tsv")
    assert result["samples"] == 1797 and len(result["scan_ids"]) == 1797
    for name in ("kmeans", "scan_before_self_label", "scan"):
        assert set(result[name]) == {"accuracy", "nmi", "ari"}
        assert result[name]["accuracy"] > 0.3  # chance is about 0.1
    assert (tmp_path / "c.tsv").read_text().splitlines()[0] == "id\tkmeans\tscan"
    embeddings = tmp_path / "e.npy"
    run(["embed", str(digits_run), "--out", str(embeddings)])
    run(["cluster", str(embeddings), "--epochs", "5"])  # no labels, k estimated
    out = capsys.readouterr().out
    assert '"clusters_estimated": true' in out and '"scan"' not in out
    with pytest.raises(ConfigError, match="update_backbone"):
        run(["cluster", str(embeddings), "--update-backbone"])  # needs a run, not embeddings
    run(["cluster", str(digits_run), "--clusters", "10", "--update-backbone", "--backbone-epochs", "1",
         "--self-label-epochs", "1", "--views", "1", "--heads", "2"])
    assert '"backbone_updated": true' in capsys.readouterr().out


def test_self_labelling_is_kept_only_where_it_lowers_the_scan_loss():
    x, _ = separated()
    rng = np.random.default_rng(1)
    wild = x[rng.permutation(len(x))][None]  # "views" of other samples: targets that contradict the clusters
    neighbours = mine_neighbours(x, 20)
    for self_label_lr, kept in ((1e-3, None), (1e-1, False)):
        scan = SCAN(6, epochs=30, self_label_epochs=10, lr=1e-2, self_label_lr=self_label_lr,
                    confidence=0.5).fit(x, wild, neighbours)
        before, after = scan.self_label_losses_
        assert scan.self_label_kept_ == (after <= before)
        assert scan.head_losses(x, neighbours)[0] <= before + 1e-5  # never worse than the SCAN head
        if kept is not None:
            assert scan.self_label_kept_ == kept and (scan.labels_ == scan.scan_labels_).all()
