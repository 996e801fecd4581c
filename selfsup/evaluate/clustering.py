"""Clustering quality of embeddings: k-means, then accuracy under the best one-to-one
matching of clusters to classes (Hungarian algorithm), NMI and ARI."""

from __future__ import annotations

import numpy as np
import torch


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


def cluster_scores(embeddings: torch.Tensor, labels, num_clusters: int | None = None,
                   seed: int = 0) -> dict:
    """k-means (k = number of classes unless given) on L2-normalised embeddings."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    labels = np.asarray(labels)
    k = num_clusters or len(np.unique(labels))
    z = torch.nn.functional.normalize(embeddings.float(), dim=1).numpy()
    clusters = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(z)
    return {"cluster_acc": hungarian_accuracy(labels, clusters),
            "nmi": float(normalized_mutual_info_score(labels, clusters)),
            "ari": float(adjusted_rand_score(labels, clusters)), "clusters": k}
