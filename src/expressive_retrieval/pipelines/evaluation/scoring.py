"""Scoring nodes of ``evaluation``: the cheap systems, the pool, the oracle.

The cheap systems (baselines, projections, indexes) become scorers that can score any pair
of the split; a split above ``pooling.above_clips`` clips is judged on the pool of their
top candidates, and the oracle scores only that pool (docs/evaluation.md, "Pooling").
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from expressive_retrieval.data.segments import SegmentStore, clip_refs
from expressive_retrieval.evaluation.baselines import (
    discovery_layer_weights,
    layer_weighted_vectors,
)
from expressive_retrieval.evaluation.pooling import Scorer, judge_pool, system_scores
from expressive_retrieval.evaluation.retrieval import (
    SplitView,
    SystemScores,
    scores_from_aspects,
    view_clips,
)
from expressive_retrieval.evaluation.scorers import (
    FoundScorer,
    PairScores,
    RandomScorer,
    VectorScorer,
)
from expressive_retrieval.models import OracleConfig, OracleScorer, ProjectionConfig, ProjectionHead
from expressive_retrieval.vectors.aspects import normalised_weights, weight_query_vectors
from expressive_retrieval.vectors.index import build_index, large_index_config, search

logger = logging.getLogger(__name__)


def score_frozen_baselines(
    segments: SegmentStore,
    clips: pd.DataFrame,
    layer_evidence: dict[str, Any],
    view: SplitView,
    params: dict[str, Any],
) -> dict[str, Scorer]:
    """The baselines: ``cosine`` (all layers, mean), ``discovery_cosine`` (layers per aspect
    by evidence) and ``random`` (seeded uniform scores: chance level).

    Both cosines come from one streamed pass over the segments: row 0 of the layer mix is
    uniform, rows 1.. are the aspects' discovery weights.
    """
    started = time.perf_counter()
    evidence = discovery_layer_weights(layer_evidence, view.aspects)
    uniform = np.full((1, evidence.shape[1]), 1.0 / evidence.shape[1])
    vectors = layer_weighted_vectors(
        segments, view_clips(clips, view), np.vstack([uniform, evidence])
    )
    seconds = time.perf_counter() - started
    logger.info("Embedded the frozen baselines in %.1fs", seconds)
    per_aspect = vectors[:, 1:].reshape(len(vectors), -1)
    return {
        "random": RandomScorer(params["random_seed"], len(view.clip_ids), len(view.track_ids)),
        "cosine": VectorScorer(vectors[:, 0], seconds=seconds),
        "discovery_cosine": VectorScorer(
            per_aspect, len(view.aspects), view.model.weights, seconds
        ),
    }


@dataclass
class _OraclePairs:
    """The oracle as a pool scorer: per-aspect scores of any pairs from cached encodings."""

    model: OracleScorer
    encoded: torch.Tensor
    weights: list[float]
    seconds: float = 0.0

    def pair_scores(self, queries: np.ndarray, columns: np.ndarray | None) -> PairScores:
        assert columns is not None, "the oracle scores a pool only (or every pair: score_many)"
        per_aspect = self.model.score_lists(self.encoded[queries], self.encoded, columns)
        aspects = per_aspect.astype(np.float64)
        return aspects @ normalised_weights(self.weights, aspects.shape[-1]), aspects, None


def score_oracle(
    oracle_model: dict[str, torch.Tensor],
    oracle_config: dict[str, Any],
    segments: SegmentStore,
    clips: pd.DataFrame,
    view: SplitView,
    params: dict[str, Any],
) -> dict[str, SystemScores]:
    """The oracle over every (query, candidate) pair, or over the pool only; tracks as its
    config aggregates them. Every clip of the split is encoded once."""
    model = OracleScorer.from_state(OracleConfig.from_dict(oracle_config), oracle_model).eval()
    track = {"how": model.config.track_aggregation, "k": model.config.track_topk}
    started = time.perf_counter()
    chunks = segments.iter_clip_chunks(clip_refs(view_clips(clips, view)), params["chunk_size"])
    encoded = torch.cat([model.encode_clips(block) for block in chunks])
    if view.candidates is None:
        queries = encoded[torch.as_tensor(view.query_clips)]
        _, per_aspect = model.score_many(queries, encoded)
        seconds = time.perf_counter() - started
        scores = scores_from_aspects(view, per_aspect.astype(np.float64), track, seconds)
    else:
        pairs = _OraclePairs(model, encoded, view.model.weights, time.perf_counter() - started)
        scores = system_scores(view, pairs, track)
    judged = f"{scores.clip.size} pairs" if view.candidates is None else "the pool"
    logger.info("Oracle scored %s in %.1fs", judged, scores.seconds)
    return {"oracle": scores}


def _ann_found(
    index: Any, clip_ids: pd.DataFrame, queries: np.ndarray, view: SplitView, params: dict[str, Any]
) -> FoundScorer:
    """An index of the whole corpus searched with the default-weight vectors of the view's
    queries (``queries [Q, d]``), hits kept on the split.

    Each query asks for ``ann_depth`` neighbours (at most the index size) and keeps those
    in the split. Candidates it did not return are not retrieved: they are absent from the
    run and never count as hits; a track is returned when its clips are.
    """
    depth = int(min(params["ann_depth"], index.ntotal))
    started = time.perf_counter()
    found_scores, rows = search(index, queries, depth)
    seconds = time.perf_counter() - started
    position = pd.Series(np.arange(len(view.clip_ids)), index=view.clip_ids)
    found_ids = clip_ids["clip_id"].to_numpy()[np.maximum(rows, 0)]
    columns = position.reindex(found_ids.ravel()).to_numpy().reshape(rows.shape)
    found = np.where((rows >= 0) & ~np.isnan(columns), np.nan_to_num(columns, nan=-1), -1)
    return FoundScorer(
        found.astype(np.int64), found_scores, len(view.clip_ids), seconds, view.query_clips
    )


def score_projections(
    projection_config: dict[str, Any],
    clip_vectors: np.ndarray,
    clip_ids: pd.DataFrame,
    projection_ablation_model: dict[str, torch.Tensor],
    projection_ablation_config: dict[str, Any],
    clip_index: tuple[Any, dict[str, Any]],
    segments: SegmentStore,
    clips: pd.DataFrame,
    view: SplitView,
    params: dict[str, Any],
    index_params: dict[str, Any],
) -> dict[str, Scorer]:
    """``projection_distilled`` (shipped vectors, exact), ``projection``, and two indexes.

    The distilled system reads the shipped corpus vectors; the ablation (never shipped) is
    embedded here from the segments. ``projection_distilled_ann`` searches the shipped
    index; ``projection_distilled_ivfpq`` an index of the same vectors built here with the
    large-corpus configuration (``index_params["large"]``), so the approximate index is
    measured on real projected vectors whatever the corpus size.
    """
    config = ProjectionConfig.from_dict(projection_config)
    rows = view_clips(clip_ids, view)["row"].to_numpy()
    distilled = np.asarray(clip_vectors[rows], dtype=np.float32)
    started = time.perf_counter()
    head = ProjectionHead.from_state(
        ProjectionConfig.from_dict(projection_ablation_config), projection_ablation_model
    ).eval()
    size = params["chunk_size"]  # streamed blocks, each embedded as one batch
    chunks = segments.iter_clip_chunks(clip_refs(view_clips(clips, view)), size)
    plain = np.concatenate([head.embed_numpy(block, batch_size=size) for block in chunks])
    embed_seconds = time.perf_counter() - started
    num_aspects, weights = len(config.aspects), view.model.weights
    systems: dict[str, Scorer] = {
        "projection_distilled": VectorScorer(distilled, num_aspects, weights),
        "projection": VectorScorer(plain, num_aspects, weights, embed_seconds),
    }
    queries = weight_query_vectors(distilled[view.query_clips], config.default_weights, num_aspects)
    systems["projection_distilled_ann"] = _ann_found(clip_index[0], clip_ids, queries, view, params)
    factory, search_params = large_index_config(
        len(clip_vectors), clip_vectors.shape[1], index_params["large"]
    )
    large = build_index(clip_vectors, clip_vectors.shape[1], factory, search_params)
    systems["projection_distilled_ivfpq"] = _ann_found(large, clip_ids, queries, view, params)
    logger.info(
        "Scored the projections (ablation embedded in %.1fs, shipped %s index searched in "
        "%.2fs, %s %s in %.2fs)",
        embed_seconds,
        clip_index[1]["factory"],
        systems["projection_distilled_ann"].seconds,
        factory,
        search_params,
        systems["projection_distilled_ivfpq"].seconds,
    )
    return systems


def pool_view(
    view: SplitView,
    frozen_scorers: dict[str, Scorer],
    projection_scorers: dict[str, Scorer],
    params: dict[str, Any],
    checks: dict[str, Any],
) -> SplitView:
    """The split judged on the pool of ``pooling.systems``' top ``pooling.depth`` (a small
    split, judged on every pair, as is)."""
    pooling = params["pooling"]
    scorers = {**frozen_scorers, **projection_scorers}
    unknown = sorted(set(pooling["systems"]) - set(scorers))
    if unknown:
        raise ValueError(
            f"evaluation.pooling.systems: {unknown} cannot build the pool; choose among "
            f"{sorted(scorers)} (the oracle only scores the pool)"
        )
    chosen = {name: scorers[name] for name in pooling["systems"]}
    judged = judge_pool(
        view, chosen, pooling["depth"], pooling["track_depth"], checks["track_scoring"]
    )
    if judged.pooled:
        logger.info(
            "Pooled the top %d of %s in %.1fs: %s judged pairs per query on average",
            pooling["depth"],
            ", ".join(chosen),
            judged.pooling["seconds"],
            judged.pooling["mean_pool_size"],
        )
    return judged


def score_systems(
    view: SplitView,
    frozen_scorers: dict[str, Scorer],
    projection_scorers: dict[str, Scorer],
    checks: dict[str, Any],
) -> dict[str, SystemScores]:
    """Every system but the oracle on the view's candidates (every pair, or the pool)."""
    scorers = {**frozen_scorers, **projection_scorers}
    return {name: system_scores(view, s, checks["track_scoring"]) for name, s in scorers.items()}
