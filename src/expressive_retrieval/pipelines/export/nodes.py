"""Nodes of ``export``: gather the run's artifacts into one bundle (docs/design.md, "Bundle").

The node receives every artifact as its catalog dataset loads it (so ``--load-versions``
picks any earlier version) and re-serialises each one with the writer its dataset uses —
pandas' ``to_parquet``, ``json.dump(indent=2)``, safetensors, ``np.save``,
``faiss.write_index`` — which reproduces the stored bytes exactly (a test compares them).
Cross-references are checked here: every artifact comes from the same dataset version,
the vectors are those the index was built from, and the row counts agree; the bundle
writer then checks the written index against its manifest's sha256.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import safetensors.torch
import torch

from expressive_retrieval.evaluation.gates import check_release
from expressive_retrieval.evaluation.retrieval import TASKS
from expressive_retrieval.serving.bundle import (
    EVALUATION,
    FILES,
    FOLDERS,
    OPTIONAL_FILES,
    BundleContents,
    release_of,
)
from expressive_retrieval.serving.remote import publish_bundle
from expressive_retrieval.serving.retriever import Retriever
from expressive_retrieval.vectors.index import VECTORS_CONTENT, manifest_text, vectors_digest

logger = logging.getLogger(__name__)


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


def _json(data: Any) -> bytes:
    return json.dumps(data, indent=2).encode("utf-8")


def _safetensors(state: Mapping[str, torch.Tensor]) -> bytes:
    return safetensors.torch.save(
        {name: t.detach().contiguous().cpu() for name, t in state.items()}
    )


def _text_files(
    folder: str, files: Mapping[str, str], pattern: tuple[str, ...] = ()
) -> dict[str, bytes]:
    """``{folder/name: utf-8 bytes}``; with ``pattern`` (task names), names must be
    ``<task>/...`` or ``<task>.<ext>``."""
    out = {}
    for name, text in files.items():
        if pattern and name.split("/")[0].split(".")[0] not in pattern:
            raise ValueError(f"{folder}: {name!r} does not start with a task of {pattern}")
        out[f"{folder}/{name}"] = text.encode("utf-8")
    return out


def _check_versions(dataset_version: str, sources: Mapping[str, Mapping[str, Any]]) -> None:
    """Every artifact records the dataset version of the bundled labels."""
    wrong = {
        name: data.get("dataset_version")
        for name, data in sources.items()
        if data.get("dataset_version") != dataset_version
    }
    if wrong:
        raise ValueError(
            f"artifacts of another dataset version than the labels' {dataset_version}: {wrong}; "
            "pass matching --load-versions or rerun the pipelines"
        )


def _check_projection(
    clip_vectors: np.ndarray,
    clip_ids: pd.DataFrame,
    track_vectors: np.ndarray,
    track_ids: pd.DataFrame,
    index_manifest: dict[str, Any],
) -> None:
    """The vectors are those the index was built from, and every table has their rows."""
    if vectors_digest(clip_vectors) != index_manifest["checksums"].get(VECTORS_CONTENT):
        raise ValueError("clip_vectors are not the vectors clip_index was built from")
    counts = {
        "clip_vectors": len(clip_vectors),
        "clip_ids": len(clip_ids),
        "clip_index": index_manifest["ntotal"],
    }
    if len(set(counts.values())) != 1 or len(track_vectors) != len(track_ids):
        raise ValueError(
            f"row counts disagree: {counts}, track_vectors {len(track_vectors)}, "
            f"track_ids {len(track_ids)}"
        )


def _check_extraction(extraction: Mapping[str, Any], projection_config: Mapping[str, Any]) -> None:
    """The recorded extraction made embeddings of the model's ``L`` and ``D``."""
    recorded = (extraction.get("L"), extraction.get("D"))
    expected = (projection_config["num_layers"], projection_config["dim"])
    if recorded != expected:
        raise ValueError(
            f"extraction records L, D = {recorded}, the model was trained on {expected}: "
            "extraction.json belongs to other embeddings (rerun audio_features, or remove it)"
        )


def assemble_bundle(
    clips: pd.DataFrame,
    splits: pd.DataFrame,
    pairs: pd.DataFrame,
    triples: pd.DataFrame,
    dataset_version: dict[str, Any],
    oracle_model: dict[str, torch.Tensor],
    oracle_config: dict[str, Any],
    oracle_training_metadata: dict[str, Any],
    oracle_eval_report: dict[str, Any],
    projection_model: dict[str, torch.Tensor],
    projection_config: dict[str, Any],
    projection_training_metadata: dict[str, Any],
    clip_vectors: np.ndarray,
    clip_ids: pd.DataFrame,
    track_vectors: np.ndarray,
    track_ids: pd.DataFrame,
    clip_index: tuple[Any, dict[str, Any]],
    evaluation_report: dict[str, Any],
    evaluation_verdict: dict[str, Any],
    evaluation_runs: dict[str, str],
    evaluation_qrels: dict[str, str],
    evaluation_html: dict[str, str],
    audit_kit: dict[str, str],
    checks: dict[str, Any],
    params: dict[str, Any],
    extraction: dict[str, Any] | None = None,
) -> BundleContents:
    """Every file of the bundle, keyed by its path in the bundle, and the manifest metadata.

    Args:
        evaluation_verdict: the gate step's verdict on ``evaluation_report``; taking it
            makes export run after the gates, and only on the report they judged.
        checks: ``params:checks``; its ``track_scoring`` is how the serving API scores
            tracks, as evaluation does.
        params: ``params:export`` (``allow_failed_gates``).
        extraction: how ``audio_features`` embedded the corpus, or None for embeddings
            brought some other way; bundled when present, so queries are embedded alike.

    Returns:
        ``BundleContents`` for the ``artifact_bundle`` dataset, which writes, verifies and
        publishes it.

    Raises:
        ValueError: the artifacts do not belong together (dataset version, vectors vs
            index, row counts, extraction's L and D vs the model's) or an evaluation file
            is misnamed.
        GateFailed: the verdict is not of this report, or an evaluation gate failed and
            ``allow_failed_gates`` is false.
    """
    version = dataset_version["dataset_version"]
    _check_versions(
        version,
        {
            "oracle_training_metadata": oracle_training_metadata,
            "oracle_eval_report": oracle_eval_report,
            "projection_training_metadata": projection_training_metadata,
            "evaluation_report": evaluation_report,
        },
    )
    gates = check_release(evaluation_report, evaluation_verdict, params["allow_failed_gates"])
    index, index_manifest = clip_index
    _check_projection(clip_vectors, clip_ids, track_vectors, track_ids, index_manifest)
    tables = {
        "clips": clips,
        "splits": splits,
        "pairs": pairs,
        "triples": triples,
        "clip_ids": clip_ids,
        "track_ids": track_ids,
    }
    documents = {
        "dataset_version": dataset_version,
        "oracle_config": oracle_config,
        "oracle_training_metadata": oracle_training_metadata,
        "oracle_eval_report": oracle_eval_report,
        "projection_config": projection_config,
        "projection_training_metadata": projection_training_metadata,
        "evaluation_report": evaluation_report,
    }
    contents: dict[str, Any] = {
        **{name: _parquet(frame) for name, frame in tables.items()},
        **{name: _json(data) for name, data in documents.items()},
        "oracle_model": _safetensors(oracle_model),
        "projection_model": _safetensors(projection_model),
        "clip_vectors": clip_vectors,
        "track_vectors": track_vectors,
        "index": index,
        "index_manifest": manifest_text(index_manifest).encode("utf-8"),
    }
    files = {FILES[name]: content for name, content in contents.items()}
    if extraction is not None:
        _check_extraction(extraction, projection_config)
        files[OPTIONAL_FILES["extraction"]] = _json(extraction)
    evaluation = [
        _text_files(FOLDERS["evaluation_runs"], evaluation_runs, TASKS),
        _text_files(FOLDERS["evaluation_qrels"], evaluation_qrels, TASKS),
        _text_files(FOLDERS["evaluation_html"], evaluation_html),
        _text_files(FOLDERS["audit_kit"], audit_kit),
    ]
    for extra in evaluation:
        clash = sorted(set(extra) & set(files))
        if clash:
            raise ValueError(f"{EVALUATION}: files {clash} would be written twice")
        files.update(extra)
    metadata = {
        "dataset_version": version,
        "L": projection_config["num_layers"],
        "D": projection_config["dim"],
        "aspects": list(projection_config["aspects"]),
        "release": release_of(gates),
        "evaluation_gates": gates,
        "serving": {
            "clip_segments": projection_config["clip_segments"],
            "clip_hop_segments": dataset_version["parameters"]["labels_and_splits"][
                "clip_hop_segments"
            ],
            "track_scoring": dict(checks["track_scoring"]),
            "vector_dim": int(clip_vectors.shape[1]),
            "index": {key: index_manifest[key] for key in ("factory", "search_params", "ntotal")},
        },
    }
    logger.info(
        "Bundling dataset %s: %d clips, %d tracks, %d evaluation files",
        version,
        len(clip_ids),
        len(track_ids),
        sum(len(extra) for extra in evaluation),
    )
    return BundleContents(files, metadata)


def publish_bundle_node(bundle: Retriever, params: dict[str, Any]) -> dict[str, str] | None:
    """Publish the verified bundle to ``params["publish_to"]`` (an fsspec URL) if set.

    A ``rejected`` bundle (bundled although a gate failed) is never published.

    Returns:
        Where it landed (``url``, ``bundle_version``, ``bundle_sha256``), or None when
        nothing was published.
    """
    url = params.get("publish_to")
    version = bundle.manifest["bundle_version"]
    if not url:
        logger.info("Bundle %s not published (export.publish_to is null)", version)
        return None
    if bundle.release == "rejected":
        logger.warning(
            "Bundle %s failed evaluation gates %s: not published to %s",
            version,
            bundle.manifest["evaluation_gates"],
            url,
        )
        return None
    return publish_bundle(bundle.folder, url)
