"""scikit-learn style estimators for the evaluation protocols, for use on any embeddings
(numpy arrays or tensors): ``WeightedKNN(k=20).fit(X, y).score(X_test, y_test)``."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin

from selfsup.evaluate.protocols import knn_predict, linear_probe, select_regularisation


def _tensor(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float32)


class WeightedKNN(ClassifierMixin, BaseEstimator):
    """Weighted kNN on cosine similarity with votes exp(sim / temperature) (DINO protocol)."""

    def __init__(self, k: int = 20, temperature: float = 0.07):
        self.k, self.temperature = k, temperature

    def fit(self, X, y):
        self.classes_, index = np.unique(np.asarray(y), return_inverse=True)
        self.bank_, self.bank_labels_ = _tensor(X), torch.as_tensor(index, dtype=torch.long)
        return self

    def predict(self, X):
        predicted = knn_predict(self.bank_, self.bank_labels_, _tensor(X), self.k, self.temperature,
                                num_classes=len(self.classes_))
        return self.classes_[predicted.numpy()]


class LinearProbe(ClassifierMixin, BaseEstimator):
    """Logistic regression on standardised embeddings; ``C=None`` picks C from
    {0.01, 0.1, 1, 10} on a stratified 20% validation split of the training data."""

    def __init__(self, C: float | None = None):
        self.C = C

    def fit(self, X, y):
        self.classes_, index = np.unique(np.asarray(y), return_inverse=True)
        self.train_, self.train_labels_ = _tensor(X), torch.as_tensor(index, dtype=torch.long)
        self.C_ = self.C if self.C is not None else select_regularisation(self.train_, self.train_labels_)
        return self

    def predict(self, X):
        return self.classes_[linear_probe(self.train_, self.train_labels_, _tensor(X), C=self.C_)]
