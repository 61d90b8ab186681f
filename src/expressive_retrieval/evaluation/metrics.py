"""Ranking metrics with trec_eval's definitions, vectorised over queries, and TREC file I/O.

Inputs are dense ``[Q, N]`` matrices over candidates shared by every query: ``scores``
(higher is better), ``relevance`` (graded, relevant = grade >= 1) and ``valid`` (False marks
an excluded candidate, e.g. the query's own track: it is neither ranked nor in the qrels).
With ``candidates`` ``[Q, P]`` (indices into ``candidate_ids``, -1 padded) the matrices are
``[Q, P]`` over each query's own list instead: a pool of judged candidates.
Candidates are ordered as trec_eval orders them (score descending, then candidate id
descending) and every metric is computed on the top ``RUN_DEPTH`` list, the depth of the
exported run files, so the numbers agree with trec_eval on those files (docs/design.md,
"Evaluation").
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from expressive_retrieval.vectors.track_scores import query_chunks

RUN_DEPTH = 100
NDCG_CUTOFF = 10
# Recall cut-offs offered; a task reports those at most half its fewest candidates.
RECALL_KS = (1, 5, 10, 50)
# The report's metric names (docs/design.md, "Evaluation report"), in table order.
METRICS = (*(f"recall@{k}" for k in RECALL_KS), "mrr", "ndcg@10")


def recall_cutoffs(num_candidates: int) -> tuple[int, ...]:
    """The ``RECALL_KS`` at most half of ``num_candidates`` (the fewest any query ranks).

    Recall@K says nothing once K nears the candidate count (with 23 candidate tracks,
    Recall@50 is 1.0 for every system); half leaves room for a ranking to matter.
    """
    return tuple(k for k in RECALL_KS if k <= num_candidates // 2)


def task_metrics(ks: tuple[int, ...]) -> tuple[str, ...]:
    """The metric names of a task reporting recall at ``ks``, in ``METRICS`` order."""
    return tuple(m for m in METRICS if not m.startswith("recall@") or int(m[7:]) in ks)


def _check_ids(ids: Sequence[str], what: str) -> np.ndarray:
    """``ids`` as an object array ``[n]``; unique, non-empty strings without whitespace."""
    array = np.asarray(ids, dtype=object)
    assert array.ndim == 1, f"{what} must be one-dimensional"
    assert len(set(array.tolist())) == len(array), f"{what} must be unique"
    for value in array:
        assert isinstance(value, str) and len(value.split()) == 1 and value == value.strip(), (
            f"{what} must be non-empty strings without whitespace, got {value!r}"
        )
    return array


def _check_matrices(
    scores: np.ndarray,
    candidate_ids: Sequence[str],
    valid: np.ndarray,
    candidates: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores as float64 ``[Q, N]`` (or ``[Q, P]`` over ``candidates``), ids as object
    ``[N]``, valid as bool, the shape of scores; a pad slot (-1) is never valid."""
    scores = np.asarray(scores, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    ids = _check_ids(candidate_ids, "candidate_ids")
    if candidates is None:
        assert scores.ndim == 2 and scores.shape[1] == len(ids), (scores.shape, len(ids))
    else:
        assert candidates.shape == scores.shape, (candidates.shape, scores.shape)
        assert (candidates < len(ids)).all(), "candidates index candidate_ids"
        valid = valid & (candidates >= 0)
    assert valid.shape == scores.shape, (valid.shape, scores.shape)
    assert np.isfinite(scores[valid]).all(), "scores of valid candidates must be finite"
    return scores, ids, valid


def _id_desc_order(ids: np.ndarray) -> np.ndarray:
    """Candidate indices ``[N]`` by descending id (code-point order = strcmp on UTF-8)."""
    return np.asarray(sorted(range(len(ids)), key=ids.__getitem__, reverse=True), dtype=np.int64)


def _slot_order(ids: np.ndarray, candidates: np.ndarray | None) -> np.ndarray:
    """Columns by descending candidate id: ``[N]`` shared, or ``[Q, P]`` per query's list."""
    order = _id_desc_order(ids)
    if candidates is None:
        return order
    position = np.empty(len(ids) + 1, dtype=np.int64)
    position[order] = np.arange(len(ids))
    position[-1] = len(ids)  # pad slots (-1) last
    return np.argsort(position[candidates], axis=1, kind="stable")


def _rank(scores: np.ndarray, valid: np.ndarray, order: np.ndarray, k: int) -> np.ndarray:
    """Top-``k`` columns ``[Q, k]`` in trec order, -1 padded; ``order`` from ``_slot_order``."""
    # Columns pre-permuted into descending id order, so a stable sort on the negated score
    # breaks ties by id descending; invalid candidates get +inf and sink to the end.
    order = np.broadcast_to(order, scores.shape) if order.ndim == 1 else order
    keys = np.where(
        np.take_along_axis(valid, order, axis=1),
        -np.take_along_axis(scores, order, axis=1),
        np.inf,
    )
    perm = np.argsort(keys, axis=1, kind="stable")[:, :k]
    ranked = np.where(
        np.isfinite(np.take_along_axis(keys, perm, axis=1)),
        np.take_along_axis(order, perm, axis=1),
        -1,
    )
    return np.pad(ranked, ((0, 0), (0, k - ranked.shape[1])), constant_values=-1)


def _rows(order: np.ndarray, rows: slice) -> np.ndarray:
    """The block of a ``_slot_order`` result for query ``rows``."""
    return order if order.ndim == 1 else order[rows]


def rank_candidates(
    scores: np.ndarray,
    candidate_ids: Sequence[str],
    valid: np.ndarray,
    k: int | None = None,
    candidates: np.ndarray | None = None,
) -> np.ndarray:
    """Top-``k`` (default all) columns ``[Q, k]`` in trec order, -1 padded.

    Columns are candidate indices, or slots of ``candidates`` when it is given.
    """
    scores, ids, valid = _check_matrices(scores, candidate_ids, valid, candidates)
    k = scores.shape[1] if k is None else k
    assert k >= 0, k
    order = _slot_order(ids, candidates)
    ranked = np.full((scores.shape[0], k), -1, dtype=np.int64)
    for rows in query_chunks(scores.shape[0]):
        ranked[rows] = _rank(scores[rows], valid[rows], _rows(order, rows), k)
    return ranked


def per_query_metrics(
    scores: np.ndarray,
    relevance: np.ndarray,
    candidate_ids: Sequence[str],
    valid: np.ndarray,
    ks: Sequence[int] = (1, 5, 10, 50),
    retrieved: np.ndarray | None = None,
    candidates: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per query ``recall@K``, ``mrr``, ``ndcg@10`` and ``num_relevant`` (index = query position).

    Metrics come from the top ``RUN_DEPTH`` ranking and are NaN for a query with no relevant
    valid candidate (trec_eval leaves it out). ``retrieved`` ``[Q, N]`` marks the valid
    candidates a system returned (default: all): only those are ranked, while relevance
    (recall's denominator, the ideal DCG) still counts every valid candidate, as trec_eval
    does for a run that omits judged documents. With ``candidates`` (a pool) only the
    pooled candidates are ranked and judged.
    """
    scores, ids, valid = _check_matrices(scores, candidate_ids, valid, candidates)
    ranked_mask = valid if retrieved is None else valid & np.asarray(retrieved, dtype=bool)
    relevance = np.asarray(relevance)
    assert relevance.shape == scores.shape, (relevance.shape, scores.shape)
    assert np.issubdtype(relevance.dtype, np.integer), relevance.dtype
    assert (relevance[valid] >= 0).all(), "relevance grades must be >= 0"
    assert all(1 <= k <= RUN_DEPTH for k in ks), ks
    order = _slot_order(ids, candidates)
    cut = np.asarray(ks, dtype=np.int64) - 1  # empty when a split is too small for any K
    discount = 1.0 / np.log2(np.arange(2, NDCG_CUTOFF + 2))
    num_queries = scores.shape[0]
    recall = np.zeros((num_queries, len(ks)))
    mrr = np.zeros(num_queries)
    ndcg = np.zeros(num_queries)
    num_relevant = np.zeros(num_queries, dtype=np.int64)
    for rows in query_chunks(num_queries):
        grades = np.where(valid[rows], relevance[rows], 0).astype(np.int64)
        ranked = _rank(scores[rows], ranked_mask[rows], _rows(order, rows), RUN_DEPTH)
        gathered = np.take_along_axis(grades, np.maximum(ranked, 0), axis=1)
        ranked_grades = np.where(ranked >= 0, gathered, 0)
        hits = ranked_grades >= 1
        num_relevant[rows] = (grades >= 1).sum(axis=1)
        found = np.cumsum(hits, axis=1)[:, cut]
        recall[rows] = found / np.maximum(num_relevant[rows], 1)[:, None]
        mrr[rows] = np.where(hits.any(axis=1), 1.0 / (hits.argmax(axis=1) + 1), 0.0)
        ideal = -np.sort(-grades, axis=1)[:, :NDCG_CUTOFF]
        idcg = ideal @ discount[: ideal.shape[1]]
        dcg = ranked_grades[:, :NDCG_CUTOFF] @ discount
        ndcg[rows] = np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)
    columns = {f"recall@{k}": recall[:, i] for i, k in enumerate(ks)}
    frame = pd.DataFrame(columns | {"mrr": mrr, "ndcg@10": ndcg})
    frame.loc[num_relevant == 0] = np.nan
    frame["num_relevant"] = num_relevant
    frame.index.name = "query"
    return frame


def ranking_metrics(
    scores: np.ndarray,
    relevance: np.ndarray,
    candidate_ids: Sequence[str],
    valid: np.ndarray,
    ks: Sequence[int] = (1, 5, 10, 50),
    retrieved: np.ndarray | None = None,
) -> dict[str, float | int]:
    """Means of ``per_query_metrics`` over queries with a relevant candidate, plus counts."""
    return summarise(per_query_metrics(scores, relevance, candidate_ids, valid, ks, retrieved))


def summarise(frame: pd.DataFrame) -> dict[str, float | int]:
    """Means of a ``per_query_metrics`` frame over judged queries, plus the query counts."""
    judged = frame[frame["num_relevant"] > 0].drop(columns="num_relevant")
    means: dict[str, float | int] = {name: float(judged[name].mean()) for name in judged}
    return means | {
        "num_queries": len(judged),
        "num_queries_without_relevant": len(frame) - len(judged),
    }


def format_run(
    query_ids: Sequence[str],
    scores: np.ndarray,
    candidate_ids: Sequence[str],
    valid: np.ndarray,
    system: str,
    depth: int = RUN_DEPTH,
    retrieved: np.ndarray | None = None,
    candidates: np.ndarray | None = None,
) -> str:
    """``<query_id> Q0 <candidate_id> <rank> <score> <system>`` lines, top ``depth`` a query.

    Scores keep full float precision (``repr``); ``retrieved`` (default: every valid
    candidate) limits the run to what the system returned; ``candidates`` (a pool) to
    each query's pooled candidates.
    """
    scores, ids, valid = _check_matrices(scores, candidate_ids, valid, candidates)
    if retrieved is not None:
        valid = valid & np.asarray(retrieved, dtype=bool)
    queries = _check_ids(query_ids, "query_ids")
    assert len(queries) == scores.shape[0], (len(queries), scores.shape)
    assert len(system.split()) == 1 and system == system.strip(), f"bad system id {system!r}"
    ranked = rank_candidates(scores, ids, valid, depth, candidates)
    rows, ranks = np.nonzero(ranked >= 0)
    columns = ranked[rows, ranks]
    values = scores[rows, columns].tolist()
    found = columns if candidates is None else candidates[rows, columns]
    lines = zip(queries[rows], ids[found], (ranks + 1).tolist(), values, strict=True)
    return "".join(f"{q} Q0 {c} {r} {s!r} {system}\n" for q, c, r, s in lines)


def write_run(
    path: str | os.PathLike[str],
    query_ids: Sequence[str],
    scores: np.ndarray,
    candidate_ids: Sequence[str],
    valid: np.ndarray,
    system: str,
    depth: int = RUN_DEPTH,
    retrieved: np.ndarray | None = None,
) -> None:
    """Write ``format_run``'s lines to ``path``."""
    text = format_run(query_ids, scores, candidate_ids, valid, system, depth, retrieved)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text, encoding="utf-8")


def format_qrels(
    query_ids: Sequence[str],
    relevance: np.ndarray,
    candidate_ids: Sequence[str],
    valid: np.ndarray,
    candidates: np.ndarray | None = None,
) -> str:
    """``<query_id> 0 <candidate_id> <grade>`` for every valid candidate with grade >= 1.

    With ``candidates`` (a pool) the matrices are over each query's pooled candidates.
    """
    relevance = np.asarray(relevance)
    valid = np.asarray(valid, dtype=bool)
    queries = _check_ids(query_ids, "query_ids")
    ids = _check_ids(candidate_ids, "candidate_ids")
    width = len(ids) if candidates is None else candidates.shape[1]
    assert relevance.shape == valid.shape == (len(queries), width), relevance.shape
    assert np.issubdtype(relevance.dtype, np.integer), relevance.dtype
    rows, columns = np.nonzero(valid & (relevance >= 1))
    found = columns if candidates is None else candidates[rows, columns]
    lines = zip(queries[rows], ids[found], relevance[rows, columns].tolist(), strict=True)
    return "".join(f"{q} 0 {c} {g}\n" for q, c, g in lines)


def write_qrels(
    path: str | os.PathLike[str],
    query_ids: Sequence[str],
    relevance: np.ndarray,
    candidate_ids: Sequence[str],
    valid: np.ndarray,
) -> None:
    """Write ``format_qrels``'s lines to ``path``."""
    text = format_qrels(query_ids, relevance, candidate_ids, valid)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text, encoding="utf-8")


def parse_run(lines: Iterable[str]) -> dict[str, dict[str, float]]:
    """TREC run lines as ``{query_id: {candidate_id: score}}`` (pytrec_eval's shape)."""
    run: dict[str, dict[str, float]] = {}
    for line in lines:
        if line.strip():
            query, _, candidate, _, score, _ = line.split()
            run.setdefault(query, {})[candidate] = float(score)
    return run


def parse_qrels(lines: Iterable[str]) -> dict[str, dict[str, int]]:
    """TREC qrels lines as ``{query_id: {candidate_id: grade}}`` (pytrec_eval's shape)."""
    qrels: dict[str, dict[str, int]] = {}
    for line in lines:
        if line.strip():
            query, _, candidate, grade = line.split()
            qrels.setdefault(query, {})[candidate] = int(grade)
    return qrels


def read_run(path: str | os.PathLike[str]) -> dict[str, dict[str, float]]:
    """A TREC run file as ``{query_id: {candidate_id: score}}`` (pytrec_eval's shape)."""
    with open(path, encoding="utf-8") as handle:
        return parse_run(handle)


def read_qrels(path: str | os.PathLike[str]) -> dict[str, dict[str, int]]:
    """A TREC qrels file as ``{query_id: {candidate_id: grade}}`` (pytrec_eval's shape)."""
    with open(path, encoding="utf-8") as handle:
        return parse_qrels(handle)
