"""Evaluation of representations: weighted kNN, linear probe, RankMe."""

from selfsup.evaluate.protocols import embed_images, evaluate_embeddings, knn_predict, linear_probe, rankme

__all__ = ["embed_images", "evaluate_embeddings", "knn_predict", "linear_probe", "rankme"]
