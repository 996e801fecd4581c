"""Every evaluation protocol on one pair of (train, test) embeddings, each result beside
the protocol that produced it, so numbers are never compared across protocols by accident."""

from __future__ import annotations

import torch

from selfsup.evaluate.clustering import cluster_scores
from selfsup.evaluate.monitors import label_free_monitors
from selfsup.evaluate.protocols import few_shot, knn_predict_many, linear_probe, select_regularisation
from selfsup.progress import stage
from selfsup.runs import EVAL_TRAIN_ROWS, evaluation_rows

KNN_KS = (10, 20, 100, 200)
SHOTS = (1, 5, 10)
TRAIN_ROWS = f"at most {EVAL_TRAIN_ROWS:,} train rows (uniform random, seed 0)"
PROTOCOLS = {
    "knn": "weighted kNN (Wu et al. 2018 / DINO): L2-normalised embeddings, cosine similarity, "
           f"votes weighted exp(sim / 0.07); train split is the bank ({TRAIN_ROWS}), test split the queries",
    "linear": "logistic regression on standardised frozen embeddings; C from {0.01, 0.1, 1, 10} "
              "by accuracy on a fixed stratified 20% validation split of train, refit on all of train "
              f"({TRAIN_ROWS})",
    "few_shot": "n labelled train samples per class, logistic regression (C=10) on L2-normalised "
                "embeddings, accuracy on the test split, mean and std over 10 episodes",
    "clustering": "k-means (k = number of classes, 10 initialisations) on L2-normalised test "
                  "embeddings; accuracy under the best one-to-one cluster-class matching "
                  "(Hungarian), NMI, ARI",
    "label_free": "on the train embeddings, no labels: RankMe (Garrido et al. 2023), uniformity "
                  "(Wang & Isola 2020, t=2), mean per-dimension std of L2-normalised embeddings",
}


def evaluate_all(train: torch.Tensor, train_labels: torch.Tensor | None,
                 test: torch.Tensor | None = None, test_labels: torch.Tensor | None = None) -> dict:
    """kNN for k in 10/20/100/200, linear probe with a regularisation sweep, few-shot,
    k-means clustering and label-free monitors; the labelled ones only when labels exist.
    ``train`` past ``EVAL_TRAIN_ROWS`` rows is subsampled by ``evaluation_rows`` (a no-op
    on rows ``evaluate_model`` subsampled already)."""
    rows = evaluation_rows(len(train))
    if rows is not None:
        train, train_labels = train[rows], None if train_labels is None else train_labels[rows]
    result = {"label_free": {"protocol": PROTOCOLS["label_free"], **label_free_monitors(train)}}
    if train_labels is None or test is None or test_labels is None:
        return result
    stage("evaluating: kNN, linear probe (regularisation sweep), few-shot, clustering")
    knn = knn_predict_many(train, train_labels, test, KNN_KS)
    result["knn"] = {"protocol": PROTOCOLS["knn"],
                     "top1": {str(k): float((p == test_labels).float().mean()) for k, p in knn.items()}}
    C = select_regularisation(train, train_labels)
    linear = linear_probe(train, train_labels, test, C=C)
    result["linear"] = {"protocol": PROTOCOLS["linear"], "C": C,
                        "top1": float((linear == test_labels.numpy()).mean())}
    result["few_shot"] = {"protocol": PROTOCOLS["few_shot"],
                          **{f"{n}_shot": v for n, v in few_shot(train, train_labels, test, test_labels,
                                                                SHOTS).items()}}
    result["clustering"] = {"protocol": PROTOCOLS["clustering"], **cluster_scores(test, test_labels.numpy())}
    return result
