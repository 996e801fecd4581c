"""The field's evaluation protocols on frozen embeddings.

- Weighted kNN (Wu et al. 2018, "Unsupervised Feature Learning via Non-Parametric Instance
  Discrimination"; as used by DINO): L2-normalised embeddings, cosine similarity, the k
  most similar training samples vote for their class with weight exp(sim / T), T = 0.07.
- Linear probe: multinomial logistic regression on standardised frozen embeddings.
- RankMe (Garrido et al. 2023, "RankMe: Assessing the Downstream Performance of
  Pretrained Self-Supervised Representations by Their Rank"): with the singular values
  s_k of the embedding matrix, p_k = s_k / sum(s) + eps, RankMe = exp(-sum p_k log p_k).
  Needs no labels; it approaches the embedding dimension for a well-spread
  representation and 1 for a collapsed one.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F

from selfsup.data.samples import model_input
from selfsup.devices import CPU, Placement
from selfsup.errors import DivergenceError
from selfsup.evaluate.neighbours import NeighborIndex
from selfsup.progress import bar


@torch.no_grad()
def embed_batches(model, samples, mean, std, batch_size: int = 512, placement: Placement = CPU):
    """Yield float32 (B, D) CPU embeddings of consecutive batches of ``samples`` (anything
    sliceable with a length: a tensor of raw samples of any modality, uint8 images
    (N, C, H, W) or float tables/series) with ``model`` in eval mode on ``placement``'s
    device(s) under its autocast (the model is moved there), so that a caller can write
    each batch away instead of holding them all. ``model`` is a method (``method(x)`` is
    ``method.embed(x)``, the representation used downstream) or any module that maps a
    batch to (B, D), such as a bare backbone."""
    was_training = model.training
    model.eval()
    runner = placement.parallel(model)
    try:
        with bar(total=len(samples), desc="embedding", unit="sample") as shown:
            for start in range(0, len(samples), batch_size):
                x = model_input(samples[start:start + batch_size].to(placement.device), mean, std)
                with placement.autocast():
                    z = runner(x).float().cpu()
                shown.update(len(x))
                yield z
    finally:
        model.train(was_training)


def embed_images(model, samples: torch.Tensor, mean, std, batch_size: int = 512,
                 placement: Placement = CPU) -> torch.Tensor:
    """Embed raw samples of any modality with ``model`` (as ``embed_batches``); returns
    float32 (N, D) on the CPU."""
    return torch.cat(list(embed_batches(model, samples, mean, std, batch_size, placement)))


def embed_splits(model, train, test, mean, std, placement: Placement = CPU):
    """Embeddings of a (train, test) pair of sources with ``model`` (as ``embed_images``) on
    ``placement``; test may be None."""
    train_embeddings = embed_images(model, train.samples, mean, std, placement=placement)
    test_embeddings = None if test is None else embed_images(model, test.samples, mean, std,
                                                             placement=placement)
    return train_embeddings, test_embeddings


def knn_predict_many(train: torch.Tensor, train_labels: torch.Tensor, queries: torch.Tensor,
                     ks=(20,), temperature: float = 0.07, num_classes: int | None = None,
                     chunk: int = 1024) -> dict[int, torch.Tensor]:
    """Weighted kNN class predictions for ``queries`` for each k in ``ks`` (one search)."""
    num_classes = num_classes or int(train_labels.max()) + 1
    largest = min(max(ks), len(train))
    bank = NeighborIndex("flat").fit(train.float().numpy())
    predictions = {k: [] for k in ks}
    for start in range(0, len(queries), chunk):
        similarity, index = (torch.from_numpy(a) for a in bank.search(queries[start:start + chunk].float().numpy(),
                                                                      largest))
        weights = (similarity / temperature).exp()
        neighbour_labels = train_labels[index]
        for k in ks:
            k_used = min(k, largest)
            votes = torch.zeros(len(index), num_classes).scatter_add_(
                1, neighbour_labels[:, :k_used], weights[:, :k_used])
            predictions[k].append(votes.argmax(dim=1))
    return {k: torch.cat(p) for k, p in predictions.items()}


def knn_predict(train: torch.Tensor, train_labels: torch.Tensor, queries: torch.Tensor,
                k: int = 20, temperature: float = 0.07, num_classes: int | None = None,
                chunk: int = 1024) -> torch.Tensor:
    """Weighted kNN class predictions for ``queries`` given a labelled ``train`` bank."""
    return knn_predict_many(train, train_labels, queries, (k,), temperature, num_classes, chunk)[k]


def linear_probe(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor,
                 C: float = 1.0, max_iter: int = 1000) -> np.ndarray:
    """Fit logistic regression on standardised ``train`` embeddings; predict ``test``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    probe.fit(train.numpy(), train_labels.numpy())
    return probe.predict(test.numpy())


def select_regularisation(train: torch.Tensor, train_labels: torch.Tensor,
                          candidates=(0.01, 0.1, 1.0, 10.0), seed: int = 0) -> float:
    """The inverse regularisation C of the linear probe with the best accuracy on a fixed
    stratified 20% validation split of the training embeddings."""
    from sklearn.model_selection import train_test_split

    labels = train_labels.numpy()
    stratify = labels if np.bincount(labels).min() >= 2 else None
    fit, val = train_test_split(np.arange(len(labels)), test_size=0.2, random_state=seed,
                                stratify=stratify)
    scores = [(linear_probe(train[fit], train_labels[fit], train[val], C=C) == labels[val]).mean()
              for C in candidates]
    return float(candidates[int(np.argmax(scores))])


def few_shot(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor,
             test_labels: torch.Tensor, shots=(1, 5, 10), episodes: int = 10, seed: int = 0) -> dict:
    """Accuracy with ``n`` labelled samples per class, mean and std over random episodes:
    logistic regression on L2-normalised embeddings of the sampled training samples."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    labels = train_labels.numpy()
    classes = np.unique(labels)
    x_train = F.normalize(train.float(), dim=1).numpy()
    x_test = F.normalize(test.float(), dim=1).numpy()
    result = {}
    for n in shots:
        if min(np.sum(labels == c) for c in classes) < n:
            continue
        accuracies = []
        for _ in range(episodes):
            picked = np.concatenate([rng.choice(np.flatnonzero(labels == c), n, replace=False)
                                     for c in classes])
            classifier = LogisticRegression(C=10.0, max_iter=1000).fit(x_train[picked], labels[picked])
            accuracies.append(float((classifier.predict(x_test) == test_labels.numpy()).mean()))
        result[n] = {"mean": float(np.mean(accuracies)), "std": float(np.std(accuracies))}
    return result


def rankme(embeddings: torch.Tensor, eps: float = 1e-7, max_samples: int = 25_600) -> float:
    """Effective rank of an (N, D) embedding matrix (Garrido et al. 2023)."""
    z = embeddings[:max_samples].double()
    singular = torch.linalg.svdvals(z)
    p = singular / singular.sum() + eps
    return float(torch.exp(-(p * p.log()).sum()))


def evaluate_embeddings(train: torch.Tensor, train_labels: torch.Tensor | None,
                        test: torch.Tensor | None, test_labels: torch.Tensor | None,
                        knn_k: int = 20) -> dict:
    """kNN and linear top-1 on the test part (None without labels) and RankMe of train."""
    for name, z in (("training", train), ("test", test)):
        if z is not None and not torch.isfinite(z).all():
            raise DivergenceError(f"the backbone's embeddings of the {name} samples are not finite (NaN or inf): "
                                  f"the weights diverged; train with a smaller --lr")
    result = {"rankme": rankme(train), "knn_top1": None, "linear_top1": None}
    if train_labels is not None and test is not None and test_labels is not None:
        if knn_k > len(train):
            warnings.warn(f"knn_k={knn_k} is more than the {len(train)} labelled training samples: "
                          f"the kNN votes over all {len(train)}", stacklevel=2)
        knn = knn_predict(train, train_labels, test, k=knn_k)
        result["knn_top1"] = float((knn == test_labels).float().mean())
        linear = linear_probe(train, train_labels, test)
        result["linear_top1"] = float((linear == test_labels.numpy()).mean())
    return result
