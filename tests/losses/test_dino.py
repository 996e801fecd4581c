import math

import pytest
import torch

from selfsup.losses import dino_loss, updated_center


def softmax(row, temperature):
    exps = [math.exp(x / temperature) for x in row]
    return [e / sum(exps) for e in exps]


def reference_dino(student, teacher, center, student_temperature, teacher_temperature):
    """DINO (Caron et al. 2021, algorithm 1) term by term: for each teacher view i and each
    student view v != i, mean_b -sum_k P_t[i][b]_k log P_s[v][b]_k; then the mean of the pairs."""
    pairs = []
    for i, teacher_view in enumerate(teacher):
        for v, student_view in enumerate(student):
            if v == i:
                continue
            terms = []
            for t_row, s_row in zip(teacher_view, student_view):
                p_t = softmax([t - c for t, c in zip(t_row, center)], teacher_temperature)
                p_s = softmax(s_row, student_temperature)
                terms.append(-sum(a * math.log(b) for a, b in zip(p_t, p_s)))
            pairs.append(sum(terms) / len(terms))
    return sum(pairs) / len(pairs)


def test_dino_loss_matches_the_formula():
    torch.manual_seed(0)
    student = [torch.randn(3, 5) for _ in range(4)]  # 2 global and 2 local views
    teacher = [torch.randn(3, 5) for _ in range(2)]
    center = torch.randn(1, 5) * 0.3
    for tau_s, tau_t in ((0.1, 0.04), (0.2, 0.07)):
        expected = reference_dino([s.tolist() for s in student], [t.tolist() for t in teacher],
                                  center[0].tolist(), tau_s, tau_t)
        assert abs(dino_loss(student, teacher, center, tau_s, tau_t).item() - expected) < 1e-4


def test_pairs_of_the_same_view_are_skipped():
    torch.manual_seed(1)
    s1, s2, t1, t2 = (torch.randn(4, 6) for _ in range(4))
    center = torch.zeros(6)
    cross = lambda t, s: -(torch.softmax(t / 0.04, 1) * torch.log_softmax(s / 0.1, 1)).sum(1).mean()
    # with two views only the swapped pairs count
    assert torch.allclose(dino_loss([s1, s2], [t1, t2], center), (cross(t1, s2) + cross(t2, s1)) / 2, atol=1e-5)
    # a student that copies the teacher on the same view gains nothing from it
    assert torch.allclose(dino_loss([t1, s2], [t1, t2], center), dino_loss([s1, s2], [t1, t2], center) +
                          (cross(t2, t1) - cross(t2, s1)) / 2, atol=1e-5)


def test_hand_case_uniform_student_costs_log_k():
    teacher = [torch.randn(2, 8), torch.randn(2, 8)]
    assert abs(dino_loss([torch.zeros(2, 8)] * 3, teacher, torch.zeros(8)).item() - math.log(8)) < 1e-5


def test_centring_and_sharpening():
    torch.manual_seed(2)
    student, teacher = [torch.randn(4, 6) for _ in range(3)], [torch.randn(4, 6) for _ in range(2)]
    center, shift = torch.randn(1, 6), torch.randn(1, 6)
    # the same offset on the teacher outputs and the centre changes nothing
    assert torch.allclose(dino_loss(student, [t + shift for t in teacher], center + shift),
                          dino_loss(student, teacher, center), atol=1e-5)
    # a constant centre changes nothing either (softmax is shift invariant)
    assert torch.allclose(dino_loss(student, teacher, torch.full((6,), 3.0)),
                          dino_loss(student, teacher, torch.zeros(6)), atol=1e-5)


def test_no_gradient_to_teacher_or_centre():
    student = [torch.randn(3, 4, requires_grad=True) for _ in range(3)]
    teacher = [torch.randn(3, 4, requires_grad=True) for _ in range(2)]
    center = torch.zeros(1, 4, requires_grad=True)
    dino_loss(student, teacher, center).backward()
    assert all(s.grad is not None for s in student)
    assert all(t.grad is None for t in teacher) and center.grad is None


def test_center_is_an_ema_of_the_teacher_batch_mean():
    torch.manual_seed(3)
    center, teacher = torch.randn(1, 5), torch.randn(8, 5)
    new = updated_center(center, teacher, 0.9)
    expected = [0.9 * c + 0.1 * sum(row[k] for row in teacher.tolist()) / 8 for k, c in enumerate(center[0].tolist())]
    assert new.shape == (1, 5) and torch.allclose(new[0], torch.tensor(expected), atol=1e-6)
    assert updated_center(torch.zeros(5), teacher, 0.0).shape == (5,)
    assert torch.allclose(updated_center(torch.zeros(5), teacher, 0.0), teacher.mean(0), atol=1e-6)
    # repeated updates with the same batch converge to its mean
    for _ in range(200):
        center = updated_center(center, teacher, 0.9)
    assert torch.allclose(center[0], teacher.mean(0), atol=1e-5)


def test_dino_loss_checks_its_arguments():
    with pytest.raises(ValueError, match="teacher"):
        dino_loss([torch.zeros(2, 3)] * 2, [torch.zeros(2, 3)] * 3, torch.zeros(3))
