import math

import numpy as np
import pytest
import torch

from expressive_retrieval.models import (
    DistillationLoss,
    ListwiseData,
    TeacherScores,
    projection_list_scores,
)
from expressive_retrieval.models.training import ndcg_at_10
from expressive_retrieval.models.training.projection import _pool_similarities
from tests.models.test_projection import fit_planted, planted, planted_head

KINDS = ["margin_mse", "listwise_kl"]


def _scores(seed: int, shape: tuple[int, int] = (4, 6)) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", KINDS)
def test_zero_only_when_student_matches_teacher(kind):
    teacher = _scores(0)
    assert DistillationLoss.compute_loss(teacher, teacher, kind=kind).item() == pytest.approx(
        0, abs=1e-6
    )
    assert DistillationLoss(kind)(_scores(1), teacher).item() > 0.01


def test_margin_mse_ignores_a_per_list_offset():
    student, teacher = _scores(1), _scores(2)
    shifted = student + torch.tensor([[5.0], [-3.0], [0.5], [100.0]])
    loss = DistillationLoss.compute_loss(student, teacher, kind="margin_mse")
    torch.testing.assert_close(
        DistillationLoss.compute_loss(shifted, teacher, kind="margin_mse"), loss
    )


@pytest.mark.parametrize("kind", KINDS)
def test_padding_is_ignored(kind):
    student, teacher = _scores(3), _scores(4)
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[:, 4:] = False
    loss = DistillationLoss.compute_loss(student, teacher, mask, kind, temperature=0.5)
    noisy = torch.where(mask, student, 1e4), torch.where(mask, teacher, float("nan"))
    torch.testing.assert_close(DistillationLoss.compute_loss(*noisy, mask, kind, 0.5), loss)
    truncated = DistillationLoss.compute_loss(student[:, :4], teacher[:, :4], None, kind, 0.5)
    torch.testing.assert_close(truncated, loss)
    single = torch.zeros(4, 6, dtype=torch.bool)
    single[:, 0] = True  # one valid candidate: nothing to distil
    assert DistillationLoss.compute_loss(student, teacher, single, kind).item() == 0.0


def test_margin_mse_reference_values():
    student = torch.tensor([[1.0, 2.0, 4.0], [3.0, 1.0, 9.0]])
    teacher = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 5.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    # List 1: margins (1-2)², (1-4)², (2-4)² → 14/3; list 2: ((3-1) - (1-0))² = 1.
    loss = DistillationLoss.compute_loss(student, teacher, mask, "margin_mse")
    assert loss.item() == pytest.approx((14 / 3 + 1) / 2)
    halved = DistillationLoss.compute_loss(student, teacher, mask, "margin_mse", temperature=2.0)
    assert halved.item() == pytest.approx((14 / 3 + 1) / 2 / 4)


def test_listwise_kl_reference_value():
    student = torch.tensor([[0.0, 0.0, 7.0]])
    teacher = torch.tensor([[0.0, 2 * math.log(3.0), -1.0]])
    mask = torch.tensor([[True, True, False]])
    # T = 2: teacher (1/4, 3/4), student (1/2, 1/2).
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    loss = DistillationLoss("listwise_kl", temperature=2.0)(student, teacher, mask)
    assert loss.item() == pytest.approx(expected)


@pytest.mark.parametrize("kind", KINDS)
def test_lists_may_have_leading_dimensions(kind):
    # [Bq, A, C]: one list per (query, aspect), the mean over every list with two candidates.
    student, teacher = _scores(7, (3, 6)).reshape(3, 2, 3), _scores(8, (3, 6)).reshape(3, 2, 3)
    mask = torch.ones(3, 2, 3, dtype=torch.bool)
    mask[0, 1, 1:] = False  # a single candidate: left out of the mean
    loss = DistillationLoss.compute_loss(student, teacher, mask, kind, 0.5)
    lists = [
        DistillationLoss.compute_loss(student[q, a], teacher[q, a], None, kind, 0.5)
        for q in range(3)
        for a in range(2)
        if (q, a) != (0, 1)
    ]
    torch.testing.assert_close(loss, torch.stack(lists).mean())


def test_gradients_reach_the_student_only():
    student, teacher = _scores(5).requires_grad_(), _scores(6).requires_grad_()
    DistillationLoss.compute_loss(student, teacher, kind="listwise_kl").backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError, match="kind"):
        DistillationLoss("mse")
    with pytest.raises(ValueError, match="temperature"):
        DistillationLoss("listwise_kl", temperature=0.0)


@pytest.fixture(scope="module")
def problem():
    return planted()


def _mean_spearman(scores: np.ndarray, teacher: np.ndarray, valid: np.ndarray) -> float:
    """Mean over lists of Spearman's rank correlation (continuous scores: no ties)."""

    def rank_correlation(x: np.ndarray, y: np.ndarray) -> float:
        return np.corrcoef(x.argsort().argsort(), y.argsort().argsort())[0, 1]

    return float(
        np.mean(
            [rank_correlation(s[v], t[v]) for s, t, v in zip(scores, teacher, valid, strict=True)]
        )
    )


@pytest.mark.parametrize("kind", KINDS)
def test_distillation_alone_learns_from_a_true_teacher(problem, kind):
    clips, train, val = problem
    initial = ndcg_at_10(projection_list_scores(planted_head(), val, clips.__getitem__), val)
    weights = {"ranking": 0.0, "aspect": 0.0, "routing": 0.1, "distillation": 1.0}
    head, _ = fit_planted(problem, train.targets.mean(-1), distillation=kind, loss_weights=weights)
    final = ndcg_at_10(projection_list_scores(head, val, clips.__getitem__), val)
    assert final > max(initial + 0.1, 0.83), (initial, final)


@pytest.mark.parametrize("kind", KINDS)
def test_distilled_scores_follow_the_teacher(problem, kind):
    # The teacher ranks by tempo alone, which neither relevance nor aspect targets say.
    clips, train, _ = problem
    teacher = train.targets[..., 0]
    correlations = {}
    for weight in (0.0, 1.0):
        weights = {"ranking": 1.0, "aspect": 1.0, "routing": 0.1, "distillation": weight}
        head, _ = fit_planted(problem, teacher, distillation=kind, loss_weights=weights)
        scores = projection_list_scores(head, train, clips.__getitem__)
        correlations[weight] = _mean_spearman(scores, teacher, train.valid)
    assert correlations[1.0] > correlations[0.0] + 0.15, correlations


def test_aspect_distillation_teaches_each_sub_space_its_sub_score(problem):
    # The teacher's total is flat (it says nothing); its sub-scores carry each aspect.
    clips, train, val = problem
    initial = ndcg_at_10(projection_list_scores(planted_head(), val, clips.__getitem__), val)
    flat = np.full(train.valid.shape, 0.5)
    reversed_dynamics = np.stack([train.targets[..., 0], 1 - train.targets[..., 1]], axis=-1)
    final = {}
    for name, sub_scores, weight in (
        ("total", train.targets, "distillation"),
        ("aspects", train.targets, "aspect_distillation"),
        ("reversed", reversed_dynamics, "aspect_distillation"),
    ):
        teacher = TeacherScores(train.query_index, train.candidate_index, flat, sub_scores)
        weights = {"ranking": 0.0, "aspect": 0.0, "routing": 0.1, weight: 1.0}
        head, history = fit_planted(problem, teacher, loss_weights=weights)
        assert f"loss_{weight}" in history[0]
        final[name] = ndcg_at_10(projection_list_scores(head, val, clips.__getitem__), val)
    assert final["total"] < initial, (initial, final)  # 0.714 -> 0.597
    assert final["aspects"] > max(initial + 0.1, 0.83), (initial, final)  # 0.874
    assert final["reversed"] < final["aspects"] - 0.03, final  # 0.802


def test_aspect_distillation_refuses_a_teacher_without_sub_scores(problem):
    _, train, _ = problem
    weights = {"ranking": 1.0, "aspect": 1.0, "routing": 0.1, "aspect_distillation": 1.0}
    totals = train.targets.mean(-1)
    without = TeacherScores(train.query_index, train.candidate_index, totals)
    with pytest.raises(ValueError, match="per-aspect scores"):
        fit_planted(problem, without, loss_weights=weights)
    wrong = TeacherScores(train.query_index, train.candidate_index, totals, train.targets[:, :3])
    with pytest.raises(ValueError, match=r"must be \[Q, P, A\]"):
        fit_planted(problem, wrong, loss_weights=weights)


def test_pool_similarities_agree_on_both_paths():
    head = planted_head()
    vectors = head.embed(torch.from_numpy(planted()[0][:12]))
    positions = np.array([[1, 5, 7], [0, 11, 2]])
    shared = _pool_similarities(head, vectors[:2], vectors, positions)  # 12 <= 3 * 4
    gathered = _pool_similarities(head, vectors[:2], vectors, positions[:, :2])  # 12 > 2 * 4
    assert shared.shape == (2, 3, 2)
    torch.testing.assert_close(gathered, shared[:, :2])


def test_a_teacher_pool_reaches_pairs_the_lists_never_held(problem):
    # Lists of 3 labelled candidates; the teacher scores every other train clip.
    clips, train, val = problem
    short = ListwiseData(
        train.query_index,
        train.candidate_index[:, :3],
        train.relevance[:, :3],
        train.targets[:, :3],
    )
    teacher = TeacherScores(train.query_index, train.candidate_index, train.targets.mean(-1))
    weights = {"ranking": 1.0, "aspect": 1.0, "routing": 0.1, "distillation": 1.0}
    scores = {}
    for name, scored in (("plain", None), ("distilled", teacher)):
        head, _ = fit_planted((clips, short, val), scored, loss_weights=weights)
        scores[name] = ndcg_at_10(projection_list_scores(head, val, clips.__getitem__), val)
    assert scores["distilled"] > scores["plain"] + 0.03, scores  # 0.865 vs 0.817
