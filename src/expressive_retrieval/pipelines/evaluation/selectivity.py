"""Selectivity node of ``evaluation``: how each sub-score moves on each aspect's twins.

docs/evaluation.md, "Aspect selectivity". The test split's clips of tracks that have twins
are the source clips; each is scored, and so is the same clip of each of its twins, by a
seeded sample of the split's clips as queries (never its own track's), for the oracle, the
distilled head and the plain projection (for reference).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd
import torch

from expressive_retrieval.data.segments import SegmentStore, clip_refs
from expressive_retrieval.data.twins import check_twins
from expressive_retrieval.evaluation.retrieval import SplitView, view_clips
from expressive_retrieval.evaluation.selectivity import selectivity_verdict, twin_responses
from expressive_retrieval.evaluation.uncertainty import Resampler
from expressive_retrieval.models import OracleConfig, OracleScorer, ProjectionConfig, ProjectionHead
from expressive_retrieval.vectors.aspects import aspect_similarities

logger = logging.getLogger(__name__)


def _not_applicable(detail: str, min_ratio: float) -> dict[str, Any]:
    logger.info("Aspect selectivity not applicable: %s", detail)
    return {"twins": None, "detail": detail, "min_ratio": min_ratio, "systems": {}}


def _oracle_scores(
    model: OracleScorer, queries: np.ndarray, candidates: list[np.ndarray], batch: int
) -> list[np.ndarray]:
    """Per-aspect oracle scores ``[Q, N, A]`` of the queries against each candidate set."""
    encoded = model.encode_clips(queries, batch)
    return [model.score_many(encoded, model.encode_clips(c, batch))[1] for c in candidates]


def _projection_scores(
    head: ProjectionHead, queries: np.ndarray, candidates: list[np.ndarray], batch: int
) -> list[np.ndarray]:
    """Per-aspect sub-vector cosines ``[Q, N, A]`` of the queries against each candidate set."""
    num = len(head.config.aspects)
    encoded = head.embed_numpy(queries, batch)
    return [aspect_similarities(encoded, head.embed_numpy(c, batch), num) for c in candidates]


def _query_rows(num_clips: int, spec: dict[str, Any]) -> np.ndarray:
    """A seeded sample of ``spec["queries"]`` of the split's clips (all when fewer), sorted."""
    rng = np.random.default_rng(spec["seed"])
    size = min(spec["queries"], num_clips)
    return np.sort(rng.choice(num_clips, size=size, replace=False))


def _sub_scores(
    oracle_model: dict[str, torch.Tensor],
    oracle_config: dict[str, Any],
    heads: dict[str, tuple[dict[str, Any], dict[str, torch.Tensor]]],
    queries: np.ndarray,
    candidates: list[np.ndarray],
    batch: int,
) -> dict[str, list[np.ndarray]]:
    """Per system, the per-aspect scores ``[Q, N, A]`` of the queries against each candidate
    set: the oracle, and each projection head given as ``(config, weights)``."""
    oracle = OracleScorer.from_state(OracleConfig.from_dict(oracle_config), oracle_model).eval()
    scored = {"oracle": _oracle_scores(oracle, queries, candidates, batch)}
    for name, (config, state) in heads.items():
        head = ProjectionHead.from_state(ProjectionConfig.from_dict(config), state).eval()
        scored[name] = _projection_scores(head, queries, candidates, batch)
    return scored


def score_selectivity(
    twins: pd.DataFrame | None,
    twin_segments: SegmentStore | None,
    oracle_model: dict[str, torch.Tensor],
    oracle_config: dict[str, Any],
    projection_model: dict[str, torch.Tensor],
    projection_config: dict[str, Any],
    projection_ablation_model: dict[str, torch.Tensor],
    projection_ablation_config: dict[str, Any],
    segments: SegmentStore,
    clips: pd.DataFrame,
    view: SplitView,
    params: dict[str, Any],
    checks: dict[str, Any],
) -> dict[str, Any]:
    """The selectivity matrix ``[moved aspect × sub-score aspect]`` of every model.

    Returns:
        ``{"twins": {"source_tracks", "source_clips", "twin_clips", "queries", "delta"}
        or None, "detail", "min_ratio", "systems": {system: selectivity_verdict}}``;
        ``twins`` is None (the gate is ``not_applicable``) without twins in the split.
    """
    min_ratio = params["gates"]["aspect_selectivity"]["min_ratio"]
    if twins is None or twin_segments is None or twins.empty:
        return _not_applicable(
            "this catalogue has no twins (written by synthetic_data only)", min_ratio
        )
    aspects = view.aspects
    check_twins(twins, twin_segments, segments, aspects, clips["track_id"].unique().tolist())
    members = view_clips(clips, view)
    sources = members[members["track_id"].isin(twins["source_track_id"])]
    if sources.empty:
        return _not_applicable(f"no track of the {params['split']} split has twins", min_ratio)
    started = time.perf_counter()
    query_rows = _query_rows(len(members), params["selectivity"])
    source_rows = sources.index.to_numpy()
    twin_of = twins.set_index(["source_track_id", "aspect"])["twin_id"]
    twin_refs = [  # source-major, aspects inner: reshaped to [N, M] below
        (twin_of[(track, aspect)], start, end)
        for track, start, end in clip_refs(sources)
        for aspect in aspects
    ]
    with segments, twin_segments:
        queries = segments.clips(clip_refs(members.iloc[query_rows]))
        candidates = [segments.clips(clip_refs(sources)), twin_segments.clips(twin_refs)]
    scored = _sub_scores(
        oracle_model,
        oracle_config,
        {
            "projection_distilled": (projection_config, projection_model),
            "projection": (projection_ablation_config, projection_ablation_model),
        },
        queries,
        candidates,
        params["chunk_size"],
    )
    valid = view.clip_track[query_rows][:, None] != view.clip_track[source_rows][None, :]
    uncertainty = checks["uncertainty"]
    resampler = Resampler.draw(
        view.units[source_rows], uncertainty["resamples"], uncertainty["seed"]
    )
    systems = {}
    for name, (original, twin) in scored.items():
        moved = twin.reshape(len(query_rows), len(source_rows), len(aspects), len(aspects))
        responses = twin_responses(original, moved, valid)
        systems[name] = selectivity_verdict(responses, aspects, min_ratio, resampler)
    logger.info(
        "Aspect selectivity: %d source clips of %d tracks, %d twin clips, %d queries, in %.1fs",
        len(source_rows),
        sources["track_id"].nunique(),
        len(twin_refs),
        len(query_rows),
        time.perf_counter() - started,
    )
    delta = twins[twins["source_track_id"].isin(sources["track_id"])].groupby("aspect")["delta"]
    return {
        "twins": {
            "source_tracks": int(sources["track_id"].nunique()),
            "source_clips": len(source_rows),
            "twin_clips": len(twin_refs),
            "queries": len(query_rows),
            "delta": {a: float(d) for a, d in delta.mean().reindex(aspects).items()},
        },
        "detail": f"twins of {sources['track_id'].nunique()} {params['split']} tracks",
        "min_ratio": min_ratio,
        "systems": systems,
    }
