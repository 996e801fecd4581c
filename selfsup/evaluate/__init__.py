"""Evaluation of representations: the field's protocols (weighted kNN, linear probe,
few-shot, clustering) and label-free monitors (RankMe, alignment, uniformity, std)."""

from selfsup.evaluate.clustering import cluster_scores, hungarian_accuracy
from selfsup.evaluate.estimators import LinearProbe, WeightedKNN
from selfsup.evaluate.monitors import alignment, embedding_std, label_free_monitors, uniformity
from selfsup.evaluate.protocols import (
    embed_images,
    evaluate_embeddings,
    few_shot,
    knn_predict,
    knn_predict_many,
    linear_probe,
    rankme,
    select_regularisation,
)
from selfsup.evaluate.suite import PROTOCOLS, evaluate_all

__all__ = ["LinearProbe", "PROTOCOLS", "WeightedKNN", "alignment", "cluster_scores", "embed_images", "embedding_std", "evaluate_all",
           "evaluate_embeddings", "few_shot", "hungarian_accuracy", "knn_predict", "knn_predict_many",
           "label_free_monitors", "linear_probe", "rankme", "select_regularisation", "uniformity"]
