"""Nodes of ``projection_retriever``: distil, project the corpus, index it.

The test split is measured only by ``evaluation``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import save as save_safetensors

from expressive_retrieval.data.segments import SegmentStore, clip_refs
from expressive_retrieval.datasets import VectorBlocks
from expressive_retrieval.models import (
    ListwiseData,
    OracleConfig,
    OracleScorer,
    ProjectionConfig,
    ProjectionHead,
    ProjectionTrainParams,
    TeacherScores,
    fit_projection,
    oracle_list_scores,
)
from expressive_retrieval.models.training import listwise_data
from expressive_retrieval.pipelines._inputs import (
    clip_loader,
    model_layout,
    split_pool,
    train_on_lists,
)
from expressive_retrieval.pipelines.projection_retriever.corpus import project_shard
from expressive_retrieval.scale import ScaleSettings, map_shards, plan_shards, staging_folder
from expressive_retrieval.scale.files import fingerprints, join, load_npy, write_bytes
from expressive_retrieval.vectors.aspects import track_vectors
from expressive_retrieval.vectors.index import (
    VECTORS_CONTENT,
    IndexArtifact,
    build_index,
    index_config,
    vectors_digest,
)

logger = logging.getLogger(__name__)

CLIP_ID_COLUMNS = ["clip_id", "track_id", "segment_start", "segment_end", "split"]
POOL_PAIRS = 2048  # (query, candidate) pairs the oracle scores per block


def oracle_teacher_scores(
    oracle_model: dict[str, torch.Tensor],
    oracle_config: dict[str, Any],
    segments: SegmentStore,
    clips: pd.DataFrame,
    pairs: pd.DataFrame,
    params: dict[str, Any],
    seed: int,
) -> TeacherScores:
    """The oracle's scores of a pool of train clips per train list's query.

    Both the default-weight total and each aspect's sub-score ``s_a`` (``aspect_scores``,
    for ``aspect_distillation``). The pool (``params["teacher_pool"]``) holds every train
    clip of another track, up to ``size``; above it, the list's labelled candidates, the
    ``mined`` nearest in frozen mean-pooled cosine and a seeded random sample. Candidates
    come only from the train split.
    """
    oracle = OracleScorer.from_state(OracleConfig.from_dict(oracle_config), oracle_model).eval()
    train = listwise_data(pairs, clips, oracle.config.aspects, "train")
    started = time.perf_counter()
    with segments:
        pool = split_pool(segments, clips, train, "train", params["teacher_pool"], seed)
        lists = ListwiseData(
            train.query_index,
            pool,
            np.zeros(pool.shape, np.float32),
            np.zeros((*pool.shape, 1), np.float32),
        )
        aspect_scores = oracle_list_scores(
            oracle,
            lists,
            clip_loader(segments, clips),
            max(1, POOL_PAIRS // pool.shape[1]),
            aspects=True,
        )
        # The total summed in float64, stored in float32 like the sub-scores.
        scores = oracle.combine(torch.from_numpy(aspect_scores).double()).float().numpy()
    logger.info(
        "Oracle scored %d train queries x %d pool candidates in %.1fs",
        *pool.shape,
        time.perf_counter() - started,
    )
    return TeacherScores(train.query_index, pool, scores, aspect_scores)


def _train(
    segments: SegmentStore,
    clips: pd.DataFrame,
    pairs: pd.DataFrame,
    layer_evidence: dict[str, Any],
    dataset_version: dict[str, Any],
    teacher: TeacherScores | None,
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
        "distilled": teacher is not None and train_params.distils,
        "distillation": train_params.distillation,
    }
    return state, config.to_dict(), metadata


def train_distilled_projection(
    segments: SegmentStore,
    clips: pd.DataFrame,
    pairs: pd.DataFrame,
    layer_evidence: dict[str, Any],
    dataset_version: dict[str, Any],
    teacher_scores: TeacherScores,
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


def _streamed(
    head: ProjectionHead, segments: SegmentStore, refs: list[tuple[str, int, int]], chunk: int
) -> Callable[[], Iterator[np.ndarray]]:
    """Blocks projected in this process as the dataset pulls them."""

    def blocks() -> Iterator[np.ndarray]:
        started, done = time.perf_counter(), 0
        for block in segments.iter_clip_chunks(refs, chunk):
            yield head.embed_numpy(block)
            done += len(block)
        rate = done / max(time.perf_counter() - started, 1e-9)
        logger.info("Projected %d clips (%.0f clips/s)", done, rate)

    return blocks


def _sharded(
    model_state: dict[str, torch.Tensor],
    model_config: dict[str, Any],
    segments: SegmentStore,
    refs: list[tuple[str, int, int]],
    chunk: int,
    settings: ScaleSettings,
) -> Callable[[], Iterator[np.ndarray]]:
    """Blocks projected on Dask now, one part file per shard, read back in order.

    Shards are cut at multiples of ``chunk`` rows, so every chunk holds the clips it holds
    in this process: the vectors are the same bytes.
    """
    weights = save_safetensors(model_state)
    config = json.dumps(model_config, sort_keys=True)
    step_key = hashlib.sha256(weights + f"{config}\n{chunk}".encode()).hexdigest()
    staging = staging_folder(settings.staging, "project_corpus", step_key)
    context = {
        "segments": str(segments.root.resolve()),
        "weights": join(staging, "head.safetensors"),
        "config": config,
        "chunk_size": chunk,
    }
    write_bytes(context["weights"], weights)
    names = [track_id for track_id, _, _ in refs]
    shards = plan_shards(
        step_key,
        names,
        settings.shard_tracks,
        lambda start, stop: [list(ref) for ref in refs[start:stop]],
        fingerprints(context["segments"], set(names), ".npy"),
        align=chunk,
    )
    parts = map_shards("project_corpus", project_shard, shards, staging, context, settings)

    def blocks() -> Iterator[np.ndarray]:
        for part in parts:
            yield load_npy(part.files[0])

    return blocks


def project_corpus(
    model_state: dict[str, torch.Tensor],
    model_config: dict[str, Any],
    segments: SegmentStore,
    clips: pd.DataFrame,
    params: dict[str, Any],
    scale: dict[str, Any],
) -> tuple[VectorBlocks, pd.DataFrame]:
    """Vectors of every clip, in chunks of ``corpus.chunk_size`` clips.

    In process (``scale``, docs/scale.md) the ``clip_vectors`` dataset computes and writes
    one chunk at a time from the memory-mapped segments; on Dask each shard of tracks is
    projected by a worker into a part file (a re-run skips finished shards) and the
    dataset streams the parts. Either way memory stays flat whatever the corpus size, and
    the vectors are the same bytes. Row ``i`` of the vectors is row ``i`` of ``clip_ids``.
    """
    settings = ScaleSettings.from_params(scale)
    refs, chunk = clip_refs(clips), params["corpus"]["chunk_size"]
    if settings.uses_dask(clips["track_id"].nunique()):
        blocks = _sharded(model_state, model_config, segments, refs, chunk, settings)
    else:
        blocks = _streamed(_head(model_state, model_config), segments, refs, chunk)
    ids = clips[CLIP_ID_COLUMNS].reset_index(drop=True)
    dim = ProjectionConfig.from_dict(model_config).vector_dim
    return VectorBlocks(len(refs), dim, blocks), ids


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
    """The FAISS inner-product index over clip vectors, its type chosen by corpus size."""
    factory, search_params = index_config(len(clip_vectors), clip_vectors.shape[1], params["index"])
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
