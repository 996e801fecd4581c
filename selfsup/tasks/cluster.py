"""Clustering without labels: k-means, then SCAN.

SCAN (Van Gansbeke et al. 2020, "SCAN: Learning to Classify Images without Labels"):

1. mine the K nearest neighbours N_X of every sample in the pretrained embedding space;
2. train a clustering head Phi (softmax over C clusters) with

       L = -1/|D| sum_X sum_{k in N_X} log <Phi(X), Phi(k)>  -  lambda * H(mean_X Phi(X)),
       H(p) = -sum_c p_c log p_c

   the first term makes neighbours agree and be confident, the entropy of the mean
   assignment spreads samples over all clusters (lambda = 5 in the paper);
3. self-label: samples whose weak-view prediction is confident (max > 0.99) become
   pseudo-labels for their strongly augmented view, with cross-entropy weighted by
   inverse pseudo-label frequency so large clusters do not swallow small ones.

Here the backbone stays frozen and the head is trained on embeddings: the "views" are
embeddings of augmented images (SimCLR recipe) computed once. The paper also updates the
backbone; on small CPU budgets the frozen version is what we can afford.

The number of clusters, when not given, is estimated by the eigengap heuristic (von
Luxburg 2007, "A Tutorial on Spectral Clustering", sec. 8.3) on a k-NN graph of a subsample.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from selfsup.config import ConfigError
from selfsup.evaluate.clustering import cluster_metrics, kmeans
from selfsup.evaluate.neighbours import l2_normalize, nearest_others
from selfsup.progress import bar
from selfsup.tasks.common import seeded


def estimate_clusters(embeddings: np.ndarray, max_clusters: int = 50, neighbours: int = 10,
                      sample: int = 2000, seed: int = 0) -> int:
    """Number of clusters by the largest gap between consecutive eigenvalues of the
    normalised Laplacian L = I - D^-1/2 W D^-1/2 of a symmetric k-NN graph: a graph with c
    well-separated groups has c eigenvalues near 0 and then a jump."""
    rng = np.random.default_rng(seed)
    x = l2_normalize(embeddings)
    if len(x) > sample:
        x = x[rng.choice(len(x), sample, replace=False)]
    _, nearest = nearest_others(x, neighbours, kind="flat")
    w = np.zeros((len(x), len(x)))
    np.put_along_axis(w, nearest, 1.0, axis=1)
    w = np.maximum(w, w.T)
    d = 1 / np.sqrt(w.sum(axis=1))
    laplacian = np.eye(len(x)) - d[:, None] * w * d[None, :]
    eigenvalues = np.linalg.eigvalsh(laplacian)[: max_clusters + 1]
    gaps = np.diff(eigenvalues)
    return int(np.argmax(gaps[1:]) + 2)  # at least 2 clusters


def mine_neighbours(embeddings: np.ndarray, k: int) -> np.ndarray:
    """(N, k) indices of each sample's k nearest neighbours by cosine, itself excluded."""
    return nearest_others(embeddings, k)[1]


def scan_loss(anchors: torch.Tensor, neighbours: torch.Tensor, entropy_weight: float):
    """(loss, consistency, entropy) from the logits of anchors and of one neighbour each."""
    p_anchor, p_neighbour = anchors.softmax(dim=1), neighbours.softmax(dim=1)
    consistency = -torch.log((p_anchor * p_neighbour).sum(dim=1).clamp_min(1e-8)).mean()
    mean = p_anchor.mean(dim=0)
    entropy = -(mean * torch.log(mean.clamp_min(1e-8))).sum()
    return consistency - entropy_weight * entropy, consistency, entropy


class SCAN:
    """SCAN clustering head on frozen embeddings (scikit-learn style).

    ``fit(X, views=None)``: X (N, D) embeddings; ``views`` optional (V, N, D) embeddings of
    augmented copies of the same samples, used as anchors/neighbours in the SCAN step and
    as the strong views of self-labelling."""

    def __init__(self, n_clusters: int, neighbours: int = 20, entropy_weight: float = 5.0,
                 epochs: int = 100, self_label_epochs: int = 50, confidence: float = 0.99,
                 batch_size: int = 256, lr: float = 1e-2, seed: int = 0):
        if n_clusters < 2:
            raise ConfigError(f"n_clusters={n_clusters}: expected >= 2")
        self.n_clusters, self.neighbours, self.entropy_weight = n_clusters, neighbours, entropy_weight
        self.epochs, self.self_label_epochs, self.confidence = epochs, self_label_epochs, confidence
        self.batch_size, self.lr, self.seed = batch_size, lr, seed

    def _inputs(self, x) -> torch.Tensor:
        # standardised, then on the unit sphere: ReLU features all share one orthant and
        # differ by little in direction, which a linear softmax head cannot pick up
        x = (np.asarray(x, dtype=np.float32) - self.mean_) / self.scale_
        return torch.from_numpy(l2_normalize(x))

    def fit(self, X: np.ndarray, views: np.ndarray | None = None) -> "SCAN":
        torch.manual_seed(self.seed)
        generator = seeded(self.seed)
        self.mean_, self.scale_ = X.mean(axis=0), X.std(axis=0) + 1e-6
        clean = self._inputs(X)
        augmented = clean[None] if views is None else torch.stack([self._inputs(v) for v in views])
        n = len(clean)
        neighbours = torch.from_numpy(mine_neighbours(X, min(self.neighbours, n - 1)))
        self.head_ = torch.nn.Linear(clean.shape[1], self.n_clusters)
        optimizer = torch.optim.Adam(self.head_.parameters(), lr=self.lr, weight_decay=1e-4)
        batch = min(self.batch_size, n)

        def view_of(rows):  # one random augmented view per row
            picked = torch.randint(len(augmented), (len(rows),), generator=generator)
            return augmented[picked, rows]

        self.history_ = []
        for _ in bar(range(self.epochs), desc="SCAN", unit="epoch"):
            for rows in torch.randperm(n, generator=generator).split(batch):
                partner = neighbours[rows, torch.randint(neighbours.shape[1], (len(rows),), generator=generator)]
                loss, consistency, entropy = scan_loss(self.head_(clean[rows]), self.head_(clean[partner]),
                                                       self.entropy_weight)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            self.history_.append({"consistency": consistency.item(), "entropy": entropy.item()})

        self.self_labelled_ = 0.0  # fraction of confident samples in the last self-labelling epoch
        for _ in bar(range(self.self_label_epochs), desc="SCAN self-labelling", unit="epoch"):
            confident = 0
            for rows in torch.randperm(n, generator=generator).split(batch):
                with torch.no_grad():
                    confidence, pseudo = self.head_(clean[rows]).softmax(dim=1).max(dim=1)
                keep = confidence > self.confidence
                if keep.sum() == 0:
                    continue
                counts = torch.bincount(pseudo[keep], minlength=self.n_clusters).float()
                weight = torch.where(counts > 0, 1 / counts.clamp_min(1), 0.0)
                weight = weight / weight[counts > 0].sum() * (counts > 0).sum()
                loss = F.cross_entropy(self.head_(view_of(rows[keep])), pseudo[keep], weight=weight)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                confident += int(keep.sum())
            self.self_labelled_ = confident / n
        self.labels_ = self.predict(X)
        return self

    @torch.no_grad()
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.head_(self._inputs(X)).softmax(dim=1).numpy()

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)


def cluster(run_or_file, data: str | None = None, n_clusters: int | None = None, views: int = 4,
            epochs: int = 100, self_label_epochs: int = 50, seed: int = 0, out=None,
            accelerator: str | None = None, devices: str | None = None) -> dict:
    """k-means and SCAN cluster ids for every sample of ``data``; with labels, their
    accuracy (Hungarian), NMI and ARI. ``views``: augmented copies embedded for SCAN (needs
    a run directory; none with an embeddings file). ``out``: write ``clusters.tsv``.
    ``accelerator``/``devices``: where a run embeds ``data`` (default: the run's, else CPU)."""
    from selfsup.data import DataError
    from selfsup.tasks.common import check_count, load_embeddings

    embedded = load_embeddings(run_or_file, data, accelerator, devices)
    if len(embedded) < 2:
        raise DataError(f"{run_or_file}: {len(embedded)} sample(s); clustering needs at least 2")
    if n_clusters is not None:
        check_count("clusters", n_clusters, len(embedded), at_least=2)
    check_count("views", views, len(embedded), at_least=0, at_most=1000)
    check_count("epochs", epochs, len(embedded), at_most=100_000)
    check_count("self_label_epochs", self_label_epochs, len(embedded), at_least=0, at_most=100_000)
    estimated = n_clusters is None
    k = estimate_clusters(embedded.embeddings, seed=seed) if estimated else n_clusters
    augmented = None
    if embedded.source is not None and views > 0:
        from selfsup.tasks.common import embed_augmented

        augmented = embed_augmented(embedded, views, seed)
    by_kmeans = kmeans(embedded.embeddings, k, seed)
    scan = SCAN(k, epochs=epochs, self_label_epochs=self_label_epochs, seed=seed).fit(embedded.embeddings, augmented)
    result = {"samples": len(embedded), "clusters": k, "clusters_estimated": estimated,
              "kmeans_ids": by_kmeans.tolist(), "scan_ids": scan.labels_.tolist()}
    if embedded.labels is not None:
        result["classes"] = int(len(np.unique(embedded.labels)))
        result["kmeans"] = cluster_metrics(embedded.labels, by_kmeans)
        result["scan"] = cluster_metrics(embedded.labels, scan.labels_)
    if out is not None:
        from selfsup.tasks.neighbors import write_table

        write_table(out, ("id", "kmeans", "scan"), zip(embedded.ids, by_kmeans.tolist(), scan.labels_.tolist()))
    return result
