"""Nodes of ``labels_and_splits``: validate raw inputs, then build clips, splits and labels."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import numpy as np
import pandas as pd

from expressive_retrieval.data import expectations
from expressive_retrieval.data.contract import check_raw_inputs, raise_for_violations
from expressive_retrieval.data.probes import probe_layer_scores
from expressive_retrieval.data.relevance import (
    RelevanceModel,
    clip_features,
    fill_missing_proxies,
    proxy_columns,
)
from expressive_retrieval.data.segments import SegmentStore
from expressive_retrieval.data.splits import assign_splits
from expressive_retrieval.evaluation.baselines import mean_pooled_vectors
from expressive_retrieval.vectors.integrity import sha256_file

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1


def check_raw_inputs_node(
    tracks: pd.DataFrame,
    segments: SegmentStore,
    proxy_targets: pd.DataFrame,
    discovery: dict,
    aspects: dict[str, dict],
    raw_files: dict[str, str],
) -> dict[str, Any]:
    """Check the raw input contract (docs/design.md, "Raw inputs") and the raw schema suites.

    Returns:
        The validation report, saved whether or not it passed.
    """
    contract = check_raw_inputs(tracks, segments, proxy_targets, discovery, aspects, raw_files)
    suites = (
        expectations.validate_raw_tables(tracks, proxy_targets, proxy_columns(aspects))
        if contract["passed"]
        else {"success": None, "suites": {}, "skipped": "the input contract failed first"}
    )
    passed = bool(contract["passed"] and suites["success"])
    return {"passed": passed, "contract": contract, "great_expectations": suites}


class ExpectationsFailed(ValueError):
    """A Great Expectations suite failed; the message names suites, columns and ids."""


def _raise_if_suites_failed(report: dict[str, Any], what: str) -> None:
    if not report["success"]:
        raise ExpectationsFailed(
            f"{what} fail their Great Expectations suites; nothing was written downstream.\n"
            + expectations.failure_summary(report)
        )


def accept_raw_inputs(report: dict[str, Any]) -> dict[str, Any]:
    """Stop the run unless the raw inputs passed; return their layout for later nodes.

    Raises:
        InputContractError: naming each file, rule and offending ids.
        ExpectationsFailed: when a raw schema suite failed.
    """
    raise_for_violations(report["contract"])
    _raise_if_suites_failed(report["great_expectations"], "Raw inputs")
    contract = report["contract"]
    return {key: contract[key] for key in ("L", "D", "dtype", "num_segments")}


def assign_splits_node(
    tracks: pd.DataFrame,
    previous_splits: pd.DataFrame | None,
    layout: dict[str, Any],
    params: dict[str, Any],
    seed: int,
) -> pd.DataFrame:
    """Leak-safe ``splits``: reuse the latest frozen split unless ``resplit`` is set."""
    previous = None if params["resplit"] else previous_splits
    if previous is not None:
        logger.info(
            "Reusing the frozen split (%d tracks); set resplit: true to redraw", len(previous)
        )
    splits = assign_splits(tracks, params["group_keys"], params["split_fractions"], seed, previous)
    logger.info("Split sizes (tracks): %s", splits["split"].value_counts().to_dict())
    return splits


def make_clips(
    splits: pd.DataFrame, layout: dict[str, Any], params: dict[str, Any]
) -> pd.DataFrame:
    """Windows of ``clip_segments`` segments with hop ``clip_hop_segments`` over every track."""
    length, hop = int(params["clip_segments"]), int(params["clip_hop_segments"])
    sizes = splits["track_id"].map(layout["num_segments"]).to_numpy()
    counts = np.where(sizes >= length, (sizes - length) // hop + 1, 0)
    short = splits.loc[counts == 0, "track_id"]
    if len(short):
        logger.warning(
            "%d track(s) shorter than one clip yield no clips: %s", len(short), list(short[:5])
        )
    track = np.repeat(splits["track_id"].to_numpy(), counts)
    start = np.concatenate([np.arange(c) * hop for c in counts]) if len(counts) else np.array([])
    clips = pd.DataFrame(
        {
            "clip_id": [f"{t}:{s}" for t, s in zip(track, start, strict=True)],
            "track_id": track,
            "segment_start": start.astype(np.int64),
            "segment_end": (start + length).astype(np.int64),
            "split": np.repeat(splits["split"].to_numpy(), counts),
        }
    )
    return clips.sort_values("clip_id", kind="stable").reset_index(drop=True)


def build_clip_features(
    proxy_targets: pd.DataFrame,
    clips: pd.DataFrame,
    aspects: dict[str, dict],
    params: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Clip-level proxy features and the relevance model fitted on the train split.

    Returns:
        ``clip_aspect_features`` (raw units, one row per clip) and the relevance model.
    """
    columns = proxy_columns(aspects)
    filled = fill_missing_proxies(proxy_targets, columns)
    features = clip_features(filled, clips, aspects)
    train = features.loc[clips.loc[clips["split"] == "train", "clip_id"]]
    model = RelevanceModel.fit(
        train, aspects, params["relevance"]["bandwidth"], params["relevance"]["thresholds"]
    )
    return features.reset_index(), model.to_dict()


def frozen_clip_vectors(
    segments: SegmentStore, clips: pd.DataFrame, layout: dict[str, Any]
) -> np.ndarray:
    """Mean-pooled frozen clip vectors ``[n_clips, D]`` (for hard negatives)."""
    return mean_pooled_vectors(segments, clips, layout["D"])


def _select_candidates(
    combined: np.ndarray, cosine: np.ndarray, valid: np.ndarray, cfg: dict, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One query's candidates: nearest by expression, hard negatives, then random fill."""
    order = np.flatnonzero(valid)
    nearest = order[np.argsort(-combined[order], kind="stable")[: cfg["nearest"]]]
    negatives = order[combined[order] < cfg["negative_max_similarity"]]
    hard = negatives[np.argsort(-cosine[negatives], kind="stable")[: cfg["hard_negatives"]]]
    chosen = list(dict.fromkeys([*nearest, *hard]))
    rest = np.setdiff1d(order, chosen)
    fill = max(0, cfg["candidates_per_query"] - len(chosen))
    chosen += list(rng.choice(rest, size=min(fill, len(rest)), replace=False))
    return np.asarray(chosen, dtype=np.int64), hard


def build_pairs_and_triples(
    clips: pd.DataFrame,
    clip_aspect_features: pd.DataFrame,
    relevance_model: dict[str, Any],
    frozen_vectors: np.ndarray,
    params: dict[str, Any],
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Graded pairs and (query, positive, hard negative) triples, never across splits.

    Candidates of a query are clips of the same split from other tracks: the ``nearest``
    by combined aspect similarity, ``hard_negatives`` (dissimilar in expression but
    nearest in frozen cosine, typically the same work or recording), and random clips.
    """
    model = RelevanceModel.from_dict(relevance_model)
    cfg = params["pairs"]
    z = model.standardize(clip_aspect_features.set_index("clip_id").loc[clips["clip_id"]])
    ids, tracks = clips["clip_id"].to_numpy(), clips["track_id"].to_numpy()
    columns: dict[str, list[np.ndarray]] = {
        "query": [],
        "candidate": [],
        "relevance": [],
        "targets": [],
    }
    triple_rows = []
    for _, members in sorted(clips.groupby("split", sort=True).indices.items()):
        # Bound each block to ~pair_block (query, candidate) pairs, whatever the split size.
        step = max(1, params["pair_block"] // len(members))
        for lo in range(0, len(members), step):
            queries = members[lo : lo + step]
            targets = model.targets(z[queries], z[members])  # [q, n, A]
            combined = model.combined(targets)
            grades = model.grades(targets)
            cosine = frozen_vectors[queries] @ frozen_vectors[members].T
            for i, q in enumerate(queries):
                rng = np.random.default_rng([seed, int(q)])
                valid = tracks[members] != tracks[q]
                chosen, hard = _select_candidates(combined[i], cosine[i], valid, cfg, rng)
                columns["query"].append(np.full(len(chosen), q))
                columns["candidate"].append(members[chosen])
                columns["relevance"].append(grades[i, chosen])
                columns["targets"].append(targets[i, chosen])
                positives = chosen[grades[i, chosen] >= 1]
                positives = positives[np.argsort(-combined[i, positives], kind="stable")]
                for pos, neg in zip(positives[: cfg["triples_per_query"]], hard, strict=False):
                    triple_rows.append((q, members[pos], members[neg]))
    query = np.concatenate(columns["query"])
    targets = np.concatenate(columns["targets"])
    pairs = pd.DataFrame(
        {
            "query_clip_id": ids[query],
            "candidate_clip_id": ids[np.concatenate(columns["candidate"])],
            "relevance": np.concatenate(columns["relevance"]).astype(np.int64),
        }
        | {f"target_{a}": targets[:, k] for k, a in enumerate(model.aspects)}
        | {"split": clips["split"].to_numpy()[query]}
    )
    rows = np.asarray(triple_rows, dtype=np.int64).reshape(-1, 3)
    triples = pd.DataFrame(
        {
            "query_clip_id": ids[rows[:, 0]],
            "positive_clip_id": ids[rows[:, 1]],
            "negative_clip_id": ids[rows[:, 2]],
            "split": clips["split"].to_numpy()[rows[:, 0]],
        }
    )
    logger.info(
        "%d pairs (relevance counts %s), %d triples",
        len(pairs),
        pairs["relevance"].value_counts().sort_index().to_dict(),
        len(triples),
    )
    return pairs, triples


def validate_labels(
    clips: pd.DataFrame,
    splits: pd.DataFrame,
    pairs: pd.DataFrame,
    triples: pd.DataFrame,
    tracks: pd.DataFrame,
    aspects: dict[str, dict],
    params: dict[str, Any],
) -> dict[str, Any]:
    """Run the label schema and leakage suites; the report is saved whatever the outcome."""
    return expectations.validate_labels(
        clips, splits, pairs, triples, tracks, list(aspects), params["group_keys"]
    )


def publish_labels(
    report: dict[str, Any],
    clips: pd.DataFrame,
    splits: pd.DataFrame,
    pairs: pd.DataFrame,
    triples: pd.DataFrame,
    features: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Release the label tables only when every suite passed.

    Raises:
        ExpectationsFailed: naming the failed suites and leaking ids.
    """
    _raise_if_suites_failed(report, "Label tables")
    return clips, splits, pairs, triples, features


def layer_evidence(
    discovery: dict,
    segments: SegmentStore,
    clips: pd.DataFrame,
    clip_aspect_features: pd.DataFrame,
    relevance_model: dict[str, Any],
    params: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """Per-aspect layer scores: discovery evidence, or layer-wise probes where it has none."""
    model = RelevanceModel.from_dict(relevance_model)
    evidence = {
        a: {"layer_scores": list(discovery["aspects"][a]["layer_scores"]), "source": "discovery"}
        for a in model.aspects
        if a in discovery.get("aspects", {})
    }
    missing = [a for a in model.aspects if a not in evidence]
    if missing:
        logger.info("No discovery evidence for %s: probing layers on the train split", missing)
        train = clips[clips["split"] == "train"]
        train_features = clip_aspect_features.set_index("clip_id").loc[train["clip_id"]]
        scores = probe_layer_scores(
            segments,
            train,
            model.standardize(train_features),
            model,
            missing,
            params["probe"],
            seed,
        )
        evidence |= {a: {"layer_scores": s, "source": "probe"} for a, s in scores.items()}
    return {a: evidence[a] for a in model.aspects}


def _frame_digest(frame: pd.DataFrame) -> str:
    return hashlib.sha256(
        pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
    ).hexdigest()


def _segments_digest(segments: SegmentStore, track_ids: list[str]) -> str:
    listing = [f"{t}:{sha256_file(segments.path(t))}" for t in sorted(track_ids)]
    return hashlib.sha256("\n".join(listing).encode()).hexdigest()


def dataset_version(
    tracks: pd.DataFrame,
    segments: SegmentStore,
    proxy_targets: pd.DataFrame,
    discovery: dict,
    clips: pd.DataFrame,
    splits: pd.DataFrame,
    pairs: pd.DataFrame,
    triples: pd.DataFrame,
    relevance_model: dict[str, Any],
    layout: dict[str, Any],
    aspects: dict[str, dict],
    params: dict[str, Any],
) -> dict[str, Any]:
    """Content hash of the raw inputs and label-shaping parameters, schema version, counts."""
    raw = {
        "tracks": _frame_digest(tracks),
        "proxy_targets": _frame_digest(proxy_targets),
        "discovery": hashlib.sha256(json.dumps(discovery, sort_keys=True).encode()).hexdigest(),
        "segments": _segments_digest(segments, list(tracks["track_id"])),
    }
    shaping = {"aspects": aspects, "labels_and_splits": params}
    shaping_digest = hashlib.sha256(json.dumps(shaping, sort_keys=True, default=str).encode())
    version = hashlib.sha256(
        json.dumps(raw, sort_keys=True).encode() + shaping_digest.digest()
    ).hexdigest()[:16]
    return {
        "dataset_version": version,
        "schema_version": SCHEMA_VERSION,
        "raw_digests": raw,
        "parameters_digest": shaping_digest.hexdigest(),
        "parameters": shaping,
        "embedding": {"L": layout["L"], "D": layout["D"], "dtype": layout["dtype"]},
        "relevance": relevance_model,
        "counts": {
            "tracks": len(tracks),
            "clips": len(clips),
            "pairs": len(pairs),
            "triples": len(triples),
            "tracks_per_split": splits["split"].value_counts().sort_index().to_dict(),
            "clips_per_split": clips["split"].value_counts().sort_index().to_dict(),
            "pairs_per_relevance": pairs["relevance"].value_counts().sort_index().to_dict(),
            "groups": int(splits["group_id"].nunique()),
        },
    }
