import math

import numpy as np
import torch

from selfsup.evaluate import evaluate_embeddings, knn_predict, linear_probe, rankme


def brute_force_knn(train, labels, queries, k, temperature, num_classes):
    predictions = []
    for q in queries:
        sims = [float(q @ t / (q.norm() * t.norm())) for t in train]
        order = sorted(range(len(train)), key=lambda i: -sims[i])[:k]
        votes = [0.0] * num_classes
        for i in order:
            votes[int(labels[i])] += math.exp(sims[i] / temperature)
        predictions.append(max(range(num_classes), key=lambda c: votes[c]))
    return predictions


def test_knn_matches_brute_force():
    torch.manual_seed(0)
    train, labels, queries = torch.randn(60, 5), torch.randint(0, 4, (60,)), torch.randn(25, 5)
    for k in (1, 5, 20):
        ours = knn_predict(train, labels, queries, k=k, temperature=0.07, num_classes=4, chunk=7)
        assert ours.tolist() == brute_force_knn(train, labels, queries, k, 0.07, 4)


def test_knn_weights_votes_by_similarity():
    # one very close neighbour of class 1 outweighs two far ones of class 0 at low temperature
    train = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.1, 1.0]])
    labels = torch.tensor([1, 0, 0])
    query = torch.tensor([[1.0, 0.05]])
    assert knn_predict(train, labels, query, k=3, temperature=0.07).item() == 1
    assert knn_predict(train, labels, query, k=3, temperature=100.0).item() == 0


def test_rankme_of_rank_r_matrix():
    torch.manual_seed(0)
    for r in (1, 4, 16):
        # equal singular values: RankMe is exactly r
        u, _ = torch.linalg.qr(torch.randn(500, r))
        v, _ = torch.linalg.qr(torch.randn(32, r))
        assert abs(rankme(u @ v.T) - r) < 0.01 * r
    collapsed = torch.randn(1, 32).expand(200, 32)
    assert rankme(collapsed) < 1.01
    assert rankme(torch.randn(2000, 32)) > 28


def test_linear_probe_and_evaluate_on_separable_data():
    torch.manual_seed(0)
    centers = torch.randn(3, 8) * 5
    labels = torch.arange(300) % 3
    x = centers[labels] + torch.randn(300, 8)
    predictions = linear_probe(x[:200], labels[:200], x[200:])
    assert (predictions == labels[200:].numpy()).mean() > 0.95
    result = evaluate_embeddings(x[:200], labels[:200], x[200:], labels[200:], knn_k=10)
    assert result["knn_top1"] > 0.95 and result["linear_top1"] > 0.95
    no_labels = evaluate_embeddings(x, None, None, None)
    assert no_labels["knn_top1"] is None and no_labels["rankme"] > 1
    # shuffled labels: chance level
    shuffled = labels[torch.randperm(300)]
    assert np.mean(linear_probe(x[:200], shuffled[:200], x[200:]) == shuffled[200:].numpy()) < 0.6


def test_knn_k_above_the_labelled_samples_is_said_not_clamped_silently():
    import pytest

    torch.manual_seed(0)
    labels = torch.arange(30) % 3
    x = torch.randn(3, 4)[labels] * 4 + torch.randn(30, 4)
    with pytest.warns(UserWarning, match="knn_k=50 is more than the 20 labelled training samples"):
        result = evaluate_embeddings(x[:20], labels[:20], x[20:], labels[20:], knn_k=50)
    # the vote runs over all 20, as k=20 does
    assert result["knn_top1"] == evaluate_embeddings(x[:20], labels[:20], x[20:], labels[20:], knn_k=20)["knn_top1"]
