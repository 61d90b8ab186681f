"""Nodes of ``labels_and_splits``: validate raw inputs, then build clips, splits and labels."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import numpy as np
import pandas as pd

from expressive_retrieval.data import expectations
from expressive_retrieval.data.candidates import (
    candidate_search,
    label_queries,
    query_block,
    split_clips,
)
from expressive_retrieval.data.contract import check_raw_inputs, raise_for_violations
from expressive_retrieval.data.contract.violations import list_ids
from expressive_retrieval.data.label_set import LABEL_TABLES, digest
from expressive_retrieval.data.probes import probe_layer_scores
from expressive_retrieval.data.relevance import (
    RelevanceModel,
    clip_features,
    fill_missing_proxies,
    proxy_columns,
)
from expressive_retrieval.data.segments import SegmentStore
from expressive_retrieval.data.splits import (
    SPLITS,
    UNASSIGNED,
    SplitError,
    assign_splits,
    connected_groups,
)
from expressive_retrieval.evaluation.baselines import mean_pooled_vectors
from expressive_retrieval.scale import ScaleSettings, map_shards, plan_shards, staging_folder
from expressive_retrieval.scale.files import join, save_npy
from expressive_retrieval.vectors.evidence import has_evidence
from expressive_retrieval.vectors.integrity import sha256_file

from .shards import forget_splits, label_shard, read_parts

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
    """Check the raw input contract (docs/design.md, "Raw inputs").

    Returns:
        The validation report, saved whether or not it passed.
    """
    return check_raw_inputs(tracks, segments, proxy_targets, discovery, aspects, raw_files)


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
    """
    raise_for_violations(report)
    return {key: report[key] for key in ("L", "D", "dtype", "num_segments")}


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
    unassigned = splits.loc[splits["split"] == UNASSIGNED, "track_id"]
    if len(unassigned):
        logger.warning(
            "%d of %d track(s) unassigned (their %s values would bridge two splits; they stay "
            "in the corpus, not in labels): %s",
            len(unassigned),
            len(splits),
            " / ".join(params["group_keys"]),
            list_ids(list(unassigned)),
        )
    return splits


def check_split_sizes(
    splits: pd.DataFrame, tracks: pd.DataFrame, params: dict[str, Any]
) -> dict[str, Any]:
    """The ``split_sizes`` suite: each split has enough tracks and key values.

    Returns:
        The report (saved whatever the outcome), with per-split sizes and the components.
    """
    keys, minimum = params["group_keys"], params["min_split_size"]
    report = expectations.validate_split_sizes(
        splits, tracks, keys, int(minimum["tracks"]), int(minimum["key_values"])
    )
    components = connected_groups(tracks, keys).value_counts()
    return report | {
        "group_keys": keys,
        "components": {
            "count": len(components),
            "largest": int(components.max()) if len(components) else 0,
        },
        "unassigned": int((splits["split"] == UNASSIGNED).sum()),
    }


def accept_splits(report: dict[str, Any], splits: pd.DataFrame) -> pd.DataFrame:
    """Release the split only when the ``split_sizes`` suite passed.

    Raises:
        SplitError: naming the keys, the components, the split sizes and the parameters.
    """
    if report["success"]:
        return splits
    sizes = "; ".join(
        f"{row['split']}: {', '.join(f'{k}={v}' for k, v in row.items() if k != 'split')}"
        for row in report["sizes"]
    )
    raise SplitError(
        f"The split is too small to train or evaluate on (group keys "
        f"{', '.join(report['group_keys'])}; {report['components']['count']} connected "
        f"component(s), the largest of {report['components']['largest']} tracks; "
        f"{report['unassigned']} track(s) unassigned). Sizes per split: {sizes}.\n"
        + expectations.failure_summary(report)
        + "\nChange labels_and_splits.split_fractions, labels_and_splits.group_keys or "
        "labels_and_splits.min_split_size (parameters_labels_and_splits.yml), or bring more "
        "tracks; nothing was written downstream."
    )


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


Labels = tuple[dict[str, np.ndarray], np.ndarray]  # pair columns, triples (label_queries)


def _sharded_labels(
    members: dict[str, np.ndarray],
    z: np.ndarray,
    frozen_vectors: np.ndarray,
    tracks: np.ndarray,
    relevance_model: dict[str, Any],
    params: dict[str, Any],
    seed: int,
    settings: ScaleSettings,
) -> list[Labels]:
    """Labels of every split's queries on Dask, a part per shard, in split then query order.

    The inputs go to the staging folder (workers read them by path); shards are cut at
    multiples of the split's query block, so every block holds the queries it holds in
    process: the labels are the same bytes.
    """
    cfg, pair_block = params["pairs"], params["pair_block"]
    codes = np.unique(tracks, return_inverse=True)[1].reshape(-1)
    inputs = {"z": z, "frozen": frozen_vectors, "tracks": codes}
    inputs |= {f"members-{name}": rows for name, rows in members.items()}
    key = hashlib.sha256(json.dumps([relevance_model, cfg, seed, pair_block]).encode())
    for name, array in inputs.items():
        key.update(name.encode())
        key.update(np.ascontiguousarray(array).data)  # no copy of a contiguous array
    step_key = key.hexdigest()
    staging = staging_folder(settings.staging, "label_queries", step_key)
    for name, array in inputs.items():
        save_npy(join(staging, f"{name}.npy"), np.asarray(array))
    shards = []
    for name, rows in members.items():
        search = candidate_search(len(rows), cfg)
        logger.info("%s: %d clips, %s candidate search", name, len(rows), search)
        shards += plan_shards(
            step_key,
            tracks[rows].tolist(),
            settings.shard_tracks,
            lambda start, stop, name=name: [name, start, stop],
            align=query_block(len(rows), search, cfg, pair_block),
            first_index=len(shards),
        )
    context = {
        "model": json.dumps(relevance_model),
        "cfg": json.dumps(cfg),
        "seed": seed,
        "pair_block": pair_block,
    }
    try:
        results = map_shards("label_queries", label_shard, shards, staging, context, settings)
    finally:
        forget_splits()
    return [read_parts(result.files) for result in results]


def build_pairs_and_triples(
    clips: pd.DataFrame,
    clip_aspect_features: pd.DataFrame,
    relevance_model: dict[str, Any],
    frozen_vectors: np.ndarray,
    params: dict[str, Any],
    seed: int,
    scale: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Graded pairs and (query, positive, hard negative) triples, never across splits.

    Unassigned clips (tracks that would bridge two splits) get no labels.

    Candidates of a query are clips of the same split from other tracks: the ``nearest``
    by combined aspect similarity, ``hard_negatives`` (dissimilar in expression but
    nearest in frozen cosine, typically the same work or recording), and random clips,
    found by ``pairs.candidate_search`` (``data/candidates.py``: exact or nearest-neighbour).
    In process each split is labelled in turn; on Dask (``scale``, docs/scale.md) shards
    of each split's queries are labelled by workers (a re-run skips finished shards).
    Either way the tables are the same.
    """
    model = RelevanceModel.from_dict(relevance_model)
    cfg = params["pairs"]
    z = model.standardize(clip_aspect_features.set_index("clip_id").loc[clips["clip_id"]])
    ids, tracks = clips["clip_id"].to_numpy(), clips["track_id"].to_numpy()
    labelled = clips.groupby("split", sort=True).indices
    members = {s: m for s, m in sorted(labelled.items()) if s in SPLITS}
    settings = ScaleSettings.from_params(scale)
    if settings.uses_dask(clips["track_id"].nunique()):
        labels = _sharded_labels(
            members, z, frozen_vectors, tracks, relevance_model, params, seed, settings
        )
    else:
        labels = []
        for name, rows in members.items():
            split = split_clips(rows, z, frozen_vectors, tracks, model, cfg, seed)
            logger.info("%s: %d clips, %s candidate search", name, len(rows), split.search)
            queries = np.arange(len(rows))
            labels.append(label_queries(split, queries, model, cfg, seed, params["pair_block"]))
    parts, triple_parts = zip(*labels, strict=True)
    columns = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    query, targets = columns["query"], columns["targets"]
    pairs = pd.DataFrame(
        {
            "query_clip_id": ids[query],
            "candidate_clip_id": ids[columns["candidate"]],
            "relevance": columns["relevance"].astype(np.int64),
        }
        | {f"target_{a}": targets[:, k] for k, a in enumerate(model.aspects)}
        | {"split": clips["split"].to_numpy()[query]}
    )
    rows = np.concatenate(triple_parts)
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
    """Per-aspect layer scores: discovery evidence, or layer-wise probes where it has none.

    An aspect has no discovery evidence when it is absent or none of its scores is above 0
    (``has_evidence``); its scores are kept as given, read later by ``layer_priors``.
    """
    model = RelevanceModel.from_dict(relevance_model)
    found = discovery.get("aspects", {})
    evidence = {
        a: {"layer_scores": list(found[a]["layer_scores"]), "source": "discovery"}
        for a in model.aspects
        if a in found and has_evidence(found[a]["layer_scores"])
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
    clip_aspect_features: pd.DataFrame,
    layer_evidence: dict[str, Any],
    relevance_model: dict[str, Any],
    layout: dict[str, Any],
    aspects: dict[str, dict],
    params: dict[str, Any],
) -> dict[str, Any]:
    """Content hash of the raw inputs and label-shaping parameters, schema version, counts,
    and the sha256 of each published label table (checked by every later pipeline)."""
    raw = {
        "tracks": digest(tracks),
        "proxy_targets": digest(proxy_targets),
        "discovery": digest(discovery),
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
        "sha256": {
            name: digest(table)
            for name, table in zip(
                LABEL_TABLES,
                (clips, splits, pairs, triples, clip_aspect_features, layer_evidence),
                strict=True,
            )
        },
        "unassigned_tracks": sorted(splits.loc[splits["split"] == UNASSIGNED, "track_id"]),
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
