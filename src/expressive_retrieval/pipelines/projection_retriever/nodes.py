"""Nodes of ``projection_retriever``: distil, project the corpus, index it, measure it."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import torch

from expressive_retrieval.data.segments import SegmentStore, clip_refs
from expressive_retrieval.datasets import VectorBlocks
from expressive_retrieval.evaluation.retrieval import (
    aspect_report,
    ranking_report,
    scores_from_aspects,
    split_view,
    view_clips,
)
from expressive_retrieval.models import (
    OracleConfig,
    OracleScorer,
    ProjectionConfig,
    ProjectionHead,
    ProjectionTrainParams,
    fit_projection,
    oracle_list_scores,
)
from expressive_retrieval.models.training import listwise_data
from expressive_retrieval.pipelines._inputs import clip_loader, model_layout, train_on_lists
from expressive_retrieval.vectors.aspects import aspect_similarities, track_vectors
from expressive_retrieval.vectors.index import (
    VECTORS_CONTENT,
    IndexArtifact,
    build_index,
    exact_search,
    recall_at_k,
    search,
    vectors_digest,
)

logger = logging.getLogger(__name__)

CLIP_ID_COLUMNS = ["clip_id", "track_id", "segment_start", "segment_end", "split"]


def oracle_teacher_scores(
    oracle_model: dict[str, torch.Tensor],
    oracle_config: dict[str, Any],
    segments: SegmentStore,
    clips: pd.DataFrame,
    pairs: pd.DataFrame,
) -> np.ndarray:
    """The oracle's default-weight scores ``[Q, C]`` of every train list (the teacher)."""
    oracle = OracleScorer.from_state(OracleConfig.from_dict(oracle_config), oracle_model).eval()
    train = listwise_data(pairs, clips, oracle.config.aspects, "train")
    started = time.perf_counter()
    with segments:
        scores = oracle_list_scores(oracle, train, clip_loader(segments, clips))
    logger.info("Oracle scored %d train lists in %.1fs", len(scores), time.perf_counter() - started)
    return scores.astype(np.float32)


def _train(
    segments: SegmentStore,
    clips: pd.DataFrame,
    pairs: pd.DataFrame,
    layer_evidence: dict[str, Any],
    dataset_version: dict[str, Any],
    teacher: np.ndarray | None,
    params: dict[str, Any],
    seed: int,
) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    config = ProjectionConfig(
        **model_layout(clips, layer_evidence, dataset_version), **params["model"]
    )
    train_params = ProjectionTrainParams(**params["training"], seed=seed)
    state, metadata = train_on_lists(
        fit_projection,
        ProjectionHead(config, seed=seed),
        teacher,
        train_params,
        segments,
        clips,
        pairs,
        dataset_version,
        params,
    )
    metadata |= {
        "distilled": teacher is not None and train_params.loss_weights.get("distillation", 0) > 0,
        "distillation": train_params.distillation,
    }
    return state, config.to_dict(), metadata


def train_distilled_projection(
    segments: SegmentStore,
    clips: pd.DataFrame,
    pairs: pd.DataFrame,
    layer_evidence: dict[str, Any],
    dataset_version: dict[str, Any],
    teacher_scores: np.ndarray,
    params: dict[str, Any],
    seed: int,
) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """The shipped retriever: ranking + aspect/routing regularisation + oracle distillation."""
    return _train(
        segments, clips, pairs, layer_evidence, dataset_version, teacher_scores, params, seed
    )


def train_projection_ablation(
    segments: SegmentStore,
    clips: pd.DataFrame,
    pairs: pd.DataFrame,
    layer_evidence: dict[str, Any],
    dataset_version: dict[str, Any],
    params: dict[str, Any],
    seed: int,
) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """The ``projection`` ablation: the same head and code, without distillation."""
    return _train(segments, clips, pairs, layer_evidence, dataset_version, None, params, seed)


def _head(state: dict[str, torch.Tensor], config: dict[str, Any]) -> ProjectionHead:
    return ProjectionHead.from_state(ProjectionConfig.from_dict(config), state).eval()


def project_corpus(
    model_state: dict[str, torch.Tensor],
    model_config: dict[str, Any],
    segments: SegmentStore,
    clips: pd.DataFrame,
    params: dict[str, Any],
) -> tuple[VectorBlocks, pd.DataFrame]:
    """Vectors of every clip, streamed from the memory-mapped segments in chunks.

    Returns a lazy ``VectorBlocks``: the ``clip_vectors`` dataset computes and writes one
    chunk at a time, so memory stays flat whatever the corpus size. Row ``i`` of the
    vectors is row ``i`` of ``clip_ids``.
    """
    head = _head(model_state, model_config)
    refs = clip_refs(clips)
    chunk = params["corpus"]["chunk_size"]

    def blocks() -> Iterator[np.ndarray]:
        started, done = time.perf_counter(), 0
        for block in segments.iter_clip_chunks(refs, chunk):
            yield head.embed_numpy(block)
            done += len(block)
        rate = done / max(time.perf_counter() - started, 1e-9)
        logger.info("Projected %d clips (%.0f clips/s)", done, rate)

    ids = clips[CLIP_ID_COLUMNS].reset_index(drop=True)
    return VectorBlocks(len(refs), head.config.vector_dim, blocks), ids


def make_track_vectors(
    clip_vectors: np.ndarray, clip_ids: pd.DataFrame, model_config: dict[str, Any]
) -> tuple[np.ndarray, pd.DataFrame]:
    """Track vectors (per-aspect mean of their clips, re-normalised) and their ids."""
    track_ids, index = np.unique(clip_ids["track_id"].to_numpy(), return_inverse=True)
    config = ProjectionConfig.from_dict(model_config)
    vectors = track_vectors(clip_vectors, index, len(track_ids), len(config.aspects))
    splits = clip_ids.groupby("track_id")["split"].first().reindex(track_ids).to_numpy()
    return vectors, pd.DataFrame({"track_id": track_ids, "split": splits})


def build_clip_index(
    clip_vectors: np.ndarray, clip_ids: pd.DataFrame, params: dict[str, Any]
) -> IndexArtifact:
    """The FAISS inner-product index over clip vectors (``index.factory``, streamed in)."""
    factory, search_params = params["index"]["factory"], params["index"]["search_params"]
    started = time.perf_counter()
    index = build_index(clip_vectors, clip_vectors.shape[1], factory, search_params)
    logger.info(
        "Built %s over %d clips in %.1fs", factory, index.ntotal, time.perf_counter() - started
    )
    return IndexArtifact(
        index=index,
        factory=factory,
        search_params=search_params,
        id_mapping={"kind": "row", "ids_file": "clip_ids.parquet", "id_column": "clip_id"},
        checksums={VECTORS_CONTENT: vectors_digest(clip_vectors)},
    )


def evaluate_projection(
    distilled_config: dict[str, Any],
    clip_vectors: np.ndarray,
    clip_ids: pd.DataFrame,
    ablation_state: dict[str, torch.Tensor],
    ablation_config: dict[str, Any],
    clip_index: tuple[Any, dict[str, Any]],
    segments: SegmentStore,
    clips: pd.DataFrame,
    clip_aspect_features: pd.DataFrame,
    dataset_version: dict[str, Any],
    oracle_eval_report: dict[str, Any],
    params: dict[str, Any],
) -> dict[str, Any]:
    """Test-split ranking of distilled vs plain projection vs the oracle; ANN recall.

    Scores use the default weights; per-aspect similarities feed the faithfulness and
    counterfactual checks. Index recall@10 compares the shipped index with exact search
    over the whole corpus for the test clips as queries.
    """
    config = ProjectionConfig.from_dict(distilled_config)
    view = split_view(clips, clip_aspect_features, dataset_version["relevance"], "test")
    distilled = np.asarray(clip_vectors[view_clips(clip_ids, view)["row"].to_numpy()])
    with segments:
        plain = _head(ablation_state, ablation_config).embed_numpy(
            segments.clips(clip_refs(view_clips(clips, view))),
            batch_size=params["corpus"]["chunk_size"],
        )
    track = params["track_scoring"]
    systems, aspects = {}, {}
    for name, vectors in (("projection_distilled", distilled), ("projection", plain)):
        per_aspect = aspect_similarities(vectors, vectors, len(config.aspects))
        scores = scores_from_aspects(view, per_aspect.astype(np.float64), track)
        systems[name] = ranking_report(view, scores.clip, scores.track)
        aspects[name] = aspect_report(view, scores.aspects, params["checks"])
    systems["oracle"] = oracle_eval_report["splits"]["test"]["systems"]["oracle"]
    systems["cosine"] = oracle_eval_report["splits"]["test"]["systems"]["cosine"]
    index, manifest = clip_index
    queries = np.ascontiguousarray(distilled, dtype=np.float32)
    k = params["index"]["recall_k"]
    started = time.perf_counter()
    _, ann = search(index, queries, k)
    ann_seconds = time.perf_counter() - started
    _, exact = exact_search(clip_vectors, queries, k)
    ratio = systems["projection_distilled"]["clip_to_clip"]["ndcg@10"] / max(
        systems["oracle"]["clip_to_clip"]["ndcg@10"], 1e-12
    )
    report = {
        "dataset_version": dataset_version["dataset_version"],
        "split": "test",
        "num_queries": len(view.clip_ids),
        "systems": systems,
        **{f"{name}_aspects": value for name, value in aspects.items()},
        "distilled_over_oracle_ndcg@10": round(ratio, 4),
        "index": {
            "factory": manifest["factory"],
            "search_params": manifest["search_params"],
            "ntotal": manifest["ntotal"],
            f"recall@{k}_vs_exact": recall_at_k(ann, exact),
            "queries_per_second": round(len(queries) / max(ann_seconds, 1e-9)),
        },
    }
    logger.info(
        "Projection (test): distilled nDCG@10 %.3f = %.0f%% of the oracle's; plain %.3f; "
        "index recall@%d %.3f",
        systems["projection_distilled"]["clip_to_clip"]["ndcg@10"],
        100 * ratio,
        systems["projection"]["clip_to_clip"]["ndcg@10"],
        k,
        report["index"][f"recall@{k}_vs_exact"],
    )
    return report
