import math

import numpy as np
import torch

from selfsup.evaluate import (
    alignment,
    cluster_scores,
    embedding_std,
    evaluate_all,
    few_shot,
    hungarian_accuracy,
    knn_predict,
    knn_predict_many,
    select_regularisation,
    uniformity,
)


def test_alignment_and_uniformity_match_their_formulas():
    torch.manual_seed(0)
    z1, z2 = torch.randn(20, 4), torch.randn(20, 4)
    f1, f2 = z1 / z1.norm(dim=1, keepdim=True), z2 / z2.norm(dim=1, keepdim=True)
    expected = sum(float((f1[i] - f2[i]).norm() ** 2) for i in range(20)) / 20
    assert abs(alignment(z1, z2) - expected) < 1e-5
    pairs = [(i, j) for i in range(20) for j in range(i + 1, 20)]
    potential = sum(math.exp(-2 * float((f1[i] - f1[j]).norm() ** 2)) for i, j in pairs) / len(pairs)
    assert abs(uniformity(z1) - math.log(potential)) < 1e-5
    assert alignment(z1, 3 * z1) < 1e-10


def test_collapsed_and_healthy_embeddings():
    collapsed = torch.randn(1, 16).expand(100, 16) + 1e-6 * torch.randn(100, 16)
    healthy = torch.randn(1000, 16)
    assert embedding_std(collapsed) < 1e-4
    assert abs(embedding_std(healthy) - 1 / math.sqrt(16)) < 0.02
    assert uniformity(collapsed) > -1e-3  # the maximum, 0, for a point
    assert uniformity(healthy) < -1.0


def test_hungarian_accuracy_of_a_permuted_labelling_is_one():
    labels = np.repeat(np.arange(5), 10)
    permutation = np.array([3, 0, 4, 1, 2])
    assert hungarian_accuracy(labels, permutation[labels]) == 1.0
    wrong = permutation[labels].copy()
    wrong[:5] = permutation[1]  # 5 of the 10 samples of class 0 go to class 1's cluster
    assert hungarian_accuracy(labels, wrong) == 0.9


def test_kmeans_on_well_separated_embeddings():
    torch.manual_seed(0)
    centres = torch.eye(6)[:, :6] * 10
    labels = torch.arange(300) % 6
    z = centres[labels] + 0.5 * torch.randn(300, 6)
    scores = cluster_scores(z, labels.numpy())
    assert scores["accuracy"] > 0.99 and scores["nmi"] > 0.95 and scores["ari"] > 0.95


def test_knn_many_equals_single_k():
    torch.manual_seed(0)
    train, labels, queries = torch.randn(80, 6), torch.randint(0, 3, (80,)), torch.randn(30, 6)
    many = knn_predict_many(train, labels, queries, (1, 5, 200))
    for k in (1, 5):
        assert torch.equal(many[k], knn_predict(train, labels, queries, k=k))
    assert torch.equal(many[200], knn_predict(train, labels, queries, k=80))  # capped at the bank


def test_few_shot_and_regularisation_sweep():
    torch.manual_seed(0)
    centres = torch.randn(4, 8) * 3
    labels = torch.arange(200) % 4
    z = centres[labels] + torch.randn(200, 8)
    result = few_shot(z[:100], labels[:100], z[100:], labels[100:], shots=(1, 5), episodes=5)
    assert set(result) == {1, 5}
    assert result[5]["mean"] >= result[1]["mean"] - 0.05 and result[5]["mean"] > 0.8
    assert result[1]["std"] >= 0
    assert select_regularisation(z[:100], labels[:100]) in (0.01, 0.1, 1.0, 10.0)


def test_evaluate_all_states_every_protocol():
    torch.manual_seed(0)
    labels = torch.arange(120) % 3
    z = torch.randn(3, 5)[labels] * 4 + torch.randn(120, 5)
    result = evaluate_all(z[:80], labels[:80], z[80:], labels[80:])
    assert set(result) == {"label_free", "knn", "linear", "few_shot", "clustering"}
    assert all(result[name]["protocol"] for name in result)
    assert set(result["knn"]["top1"]) == {"10", "20", "100", "200"}
    assert result["linear"]["top1"] > 0.9 and result["clustering"]["accuracy"] > 0.9
    assert set(evaluate_all(z, None)) == {"label_free"}


def test_sklearn_style_estimators():
    from selfsup.evaluate import LinearProbe, WeightedKNN

    rng = np.random.default_rng(0)
    names = np.array(["cat", "dog", "eel"])
    y = names[np.arange(150) % 3]
    X = rng.normal(size=(3, 6))[np.arange(150) % 3] * 4 + rng.normal(size=(150, 6))
    knn = WeightedKNN(k=5).fit(X[:100], y[:100])
    assert set(knn.predict(X[100:])) <= set(names) and knn.score(X[100:], y[100:]) > 0.95
    expected = knn_predict(torch.tensor(X[:100], dtype=torch.float32),
                           torch.tensor(np.arange(100) % 3), torch.tensor(X[100:], dtype=torch.float32), k=5)
    assert (knn.predict(X[100:]) == names[expected.numpy()]).all()
    probe = LinearProbe().fit(X[:100], y[:100])
    assert probe.C_ in (0.01, 0.1, 1.0, 10.0) and probe.score(X[100:], y[100:]) > 0.95
