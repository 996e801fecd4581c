"""Clustering quality of embeddings: k-means, then accuracy under the best one-to-one
matching of clusters to classes (Hungarian algorithm), NMI and ARI."""

from __future__ import annotations

import numpy as np
import torch

from selfsup.evaluate.neighbours import l2_normalize


def hungarian_accuracy(labels, clusters) -> float:
    """Accuracy of ``clusters`` after mapping each cluster to one class so that the number
    of agreements is largest (clusters beyond the number of classes count as wrong)."""
    from scipy.optimize import linear_sum_assignment

    labels, clusters = np.asarray(labels), np.asarray(clusters)
    classes, label_index = np.unique(labels, return_inverse=True)
    groups, cluster_index = np.unique(clusters, return_inverse=True)
    counts = np.zeros((len(groups), len(classes)), dtype=np.int64)
    np.add.at(counts, (cluster_index, label_index), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / len(labels))


def kmeans(embeddings, n_clusters: int, seed: int = 0) -> np.ndarray:
    """Cluster ids of k-means on L2-normalised embeddings (the cosine geometry of the kNN)."""
    from sklearn.cluster import KMeans

    x = l2_normalize(np.asarray(embeddings, dtype=np.float32))
    return KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(x)


def cluster_metrics(labels, clusters) -> dict:
    """Hungarian accuracy, NMI and ARI of ``clusters`` against ``labels``."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    return {"accuracy": hungarian_accuracy(labels, clusters),
            "nmi": float(normalized_mutual_info_score(labels, clusters)),
            "ari": float(adjusted_rand_score(labels, clusters))}


def cluster_scores(embeddings: torch.Tensor, labels, num_clusters: int | None = None,
                   seed: int = 0) -> dict:
    """k-means (k = number of classes unless given), scored against ``labels``."""
    labels = np.asarray(labels)
    k = num_clusters or len(np.unique(labels))
    return {**cluster_metrics(labels, kmeans(embeddings.float().numpy(), k, seed)), "clusters": k}
