"""A tiny but real bundle, made in a second by the export node and the bundle dataset.

The head is an untrained ``ProjectionHead`` with non-trivial input statistics; its clip
vectors, track vectors and Flat index come from the projection pipeline's own nodes, so
the serving API is tested against what the pipelines produce. The label, oracle and
evaluation artifacts are small stand-ins: serving only checks their bytes.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from kedro.io import Version

from benchmarks.s3_server import SeaweedS3
from expressive_retrieval.datasets import BundleDataset, FaissIndexDataset
from expressive_retrieval.evaluation.gates import report_digest
from expressive_retrieval.models import ProjectionConfig, ProjectionHead
from expressive_retrieval.models.serialization import state_dict_for_safetensors
from expressive_retrieval.pipelines.export.nodes import assemble_bundle
from expressive_retrieval.pipelines.projection_retriever.nodes import (
    CLIP_ID_COLUMNS,
    build_clip_index,
    make_track_vectors,
)

LAYERS, DIM, ASPECTS = 5, 32, ["tempo", "dynamics", "articulation"]
CLIP_SEGMENTS, HOP, TRACKS = 4, 2, 30
VERSION = "2026-01-01T00.00.00.000Z"


@dataclass
class TinyBundle:
    """A published bundle and what it was made from."""

    path: Path
    artifacts: dict[str, Any]
    segments: dict[str, np.ndarray]  # per track [n_seg, L, D] float16
    clips: pd.DataFrame
    head: ProjectionHead


def _segments(rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for t in range(TRACKS):
        style = rng.standard_normal((1, LAYERS, DIM))
        noise = rng.standard_normal((int(rng.integers(8, 12)), LAYERS, DIM))
        out[f"track_{t:02d}"] = (2.0 + style + 0.5 * noise).astype(np.float16)
    return out


def _clips(segments: dict[str, np.ndarray]) -> pd.DataFrame:
    rows = []
    for t, (track, array) in enumerate(segments.items()):
        split = "train" if t < 20 else "val" if t < 25 else "test"
        for start in range(0, len(array) - CLIP_SEGMENTS + 1, HOP):
            end = start + CLIP_SEGMENTS
            rows.append((f"{track}:{start}", track, start, end, split))
    return pd.DataFrame(rows, columns=CLIP_ID_COLUMNS)


def _head(rng: np.random.Generator) -> ProjectionHead:
    config = ProjectionConfig(
        num_layers=LAYERS,
        dim=DIM,
        aspects=ASPECTS,
        clip_segments=CLIP_SEGMENTS,
        layer_scores=rng.random((len(ASPECTS), LAYERS)).tolist(),
        default_weights=[1.0, 2.0, 1.0],
        hidden=8,
        sub_dim=4,
    )
    head = ProjectionHead(config, seed=3).eval()
    with torch.no_grad():
        head.input_mean.copy_(torch.from_numpy(rng.normal(2.0, 0.3, (LAYERS, DIM))))
        head.input_scale.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, (LAYERS, DIM))))
    return head


def tiny_artifacts(folder: Path) -> tuple[dict[str, Any], dict[str, np.ndarray], ProjectionHead]:
    """Every input of ``assemble_bundle``, as the catalog would load it."""
    rng = np.random.default_rng(0)
    segments, head = _segments(rng), _head(rng)
    clips = _clips(segments)
    stacked = np.stack([segments[t][s:e] for _, t, s, e, _ in clips.itertuples(index=False)])
    clip_vectors = head.embed_numpy(stacked)
    config = head.config.to_dict()
    track_vectors, track_ids = make_track_vectors(clip_vectors, clips, config)
    exact = {"factory": "Flat", "search_params": {}}
    params = {"index": {"exact_up_to": len(clip_vectors), "exact": exact, "large": {}}}
    index_dataset = FaissIndexDataset(filepath=str(folder / "index"))
    index_dataset.save(build_clip_index(clip_vectors, clips, params))
    version = {
        "dataset_version": "tiny",
        "parameters": {"labels_and_splits": {"clip_hop_segments": HOP}},
    }
    stamp = {"dataset_version": "tiny"}
    report = {
        **stamp,
        "bundle_version": None,
        "gates": {"ranking": {"status": "passed", "detail": ""}},
    }
    artifacts = {
        "clips": clips,
        "splits": clips.groupby("track_id", as_index=False)["split"].first(),
        "pairs": pd.DataFrame(
            {"query_clip_id": ["a"], "candidate_clip_id": ["b"], "relevance": [1]}
        ),
        "triples": pd.DataFrame(
            {"query_clip_id": ["a"], "positive_clip_id": ["b"], "negative_clip_id": ["c"]}
        ),
        "dataset_version": version,
        "oracle_model": {"weight": torch.arange(4, dtype=torch.float32)},
        "oracle_config": {"aspects": ASPECTS},
        "oracle_training_metadata": stamp,
        "oracle_eval_report": stamp,
        "projection_model": state_dict_for_safetensors(head),
        "projection_config": config,
        "projection_training_metadata": stamp,
        "clip_vectors": clip_vectors,
        "clip_ids": clips,
        "track_vectors": track_vectors,
        "track_ids": track_ids,
        "clip_index": index_dataset.load(),
        "evaluation_report": report,
        "evaluation_verdict": {"passed": True, "report_sha256": report_digest(report)},
        "evaluation_runs": {"clip_to_clip/projection_distilled_ann.trec": "q Q0 c 1 0.5 s\n"},
        "evaluation_qrels": {"clip_to_clip.qrels": "q 0 c 1\n"},
        "evaluation_html": {"report.html": "<html></html>\n", "summary.md": "summary\n"},
        "audit_kit": {"audit_kit.csv": "item\n", "audit_kit.html": "<html></html>\n"},
        "checks": {"track_scoring": {"how": "topk_mean", "k": 2}},
        "params": {"allow_failed_gates": False},
    }
    return artifacts, segments, head


def with_gates(artifacts: dict[str, Any], gates: dict[str, str]) -> dict[str, Any]:
    """``artifacts`` whose evaluation report has these gate statuses, and the verdict on it."""
    report = {
        **artifacts["evaluation_report"],
        "gates": {gate: {"status": status, "detail": "x"} for gate, status in gates.items()},
    }
    verdict = {"passed": True, "report_sha256": report_digest(report)}
    return {**artifacts, "evaluation_report": report, "evaluation_verdict": verdict}


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> TinyBundle:
    """One published tiny bundle, shared read-only (copy it before tampering)."""
    root = tmp_path_factory.mktemp("tiny_bundle")
    artifacts, segments, head = tiny_artifacts(root / "sources")
    BundleDataset(path=str(root / "export"), version=Version(None, VERSION)).save(
        assemble_bundle(**artifacts)
    )
    return TinyBundle(root / "export" / VERSION, artifacts, segments, artifacts["clips"], head)


@pytest.fixture
def bundle_copy(tiny_bundle: TinyBundle, tmp_path: Path) -> Path:
    """A private copy of the tiny bundle, free to tamper with."""
    return Path(shutil.copytree(tiny_bundle.path, tmp_path / VERSION))


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A real S3 server (SeaweedFS) for the session, reached through the standard AWS
    environment variables, which are set while it runs and restored after."""
    server = SeaweedS3(tmp_path_factory.mktemp("seaweedfs")).start()
    patch = pytest.MonkeyPatch()
    try:
        for name, value in server.env.items():
            patch.setenv(name, value)
        yield server
    finally:
        patch.undo()
        server.stop()
