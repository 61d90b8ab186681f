"""Human-audit nodes of ``evaluation``: make the blinded kit, ingest returned judgements."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import numpy as np
import pandas as pd

from expressive_retrieval.data.segments import SegmentStore
from expressive_retrieval.evaluation.audit.kit import (
    kit_table,
    krippendorff_alpha_interval,
    pairwise_preference_accuracy,
    parse_judgements,
    pool_candidates,
    stratified_sample,
)
from expressive_retrieval.evaluation.audit.page import audit_page
from expressive_retrieval.evaluation.gates import Verdict, failure
from expressive_retrieval.evaluation.metrics import rank_candidates
from expressive_retrieval.evaluation.retrieval import SplitView, SystemScores

from .nodes import all_systems

logger = logging.getLogger(__name__)

KIT_COLUMNS = [
    "kit_id",
    "item_id",
    "query_number",
    "query_clip_id",
    "query_start_s",
    "query_end_s",
    "query_audio_uri",
    "candidate_clip_id",
    "candidate_start_s",
    "candidate_end_s",
    "candidate_audio_uri",
    "rater",
    "grade",
]


def _strata(
    view: SplitView,
    clips: pd.DataFrame,
    tracks: pd.DataFrame,
    per_query: pd.DataFrame,
    names: list[str],
) -> pd.Series:
    """One stratum label per query: its track's columns and/or ``cosine_difficulty``."""
    track = clips.set_index("clip_id").loc[view.query_ids, "track_id"].to_numpy()
    info = tracks.set_index("track_id").loc[track].reset_index()
    parts = []
    for name in names:
        if name == "cosine_difficulty":
            cosine = per_query[
                (per_query["system"] == "cosine") & (per_query["task"] == "clip_to_clip")
            ]
            ndcg = cosine.set_index("query_clip_id").loc[view.query_ids, "ndcg@10"].fillna(0.0)
            tertile = pd.qcut(ndcg.rank(method="first"), 3, labels=["hard", "medium", "easy"])
            parts.append(np.asarray(tertile, dtype=str))
        elif name in info:
            parts.append(info[name].astype(str).to_numpy())
        else:
            raise ValueError(
                f"evaluation.audit.strata: {name!r} is neither a column of tracks "
                f"({sorted(info.columns)}) nor 'cosine_difficulty'"
            )
    labels = (
        ["|".join(values) for values in zip(*parts, strict=True)] if parts else [""] * len(track)
    )
    return pd.Series(labels)


def _clip_times(
    table: pd.DataFrame,
    side: str,
    clips: pd.DataFrame,
    tracks: pd.DataFrame,
    segments: SegmentStore,
) -> pd.DataFrame:
    """Start/end seconds and audio URI of each row's ``<side>_clip_id``."""
    info = clips.set_index("clip_id").loc[table[f"{side}_clip_id"]]
    track_info = tracks.set_index("track_id")
    per_track = {
        t: float(track_info.loc[t, "duration_s"]) / segments.shape(t)[0]
        for t in info["track_id"].unique()
    }
    seconds = info["track_id"].map(per_track).to_numpy()
    uri = (
        track_info["audio_uri"].reindex(info["track_id"]).fillna("").to_numpy()
        if "audio_uri" in track_info
        else np.full(len(info), "")
    )
    return pd.DataFrame(
        {
            f"{side}_start_s": np.round(info["segment_start"].to_numpy() * seconds, 3),
            f"{side}_end_s": np.round(info["segment_end"].to_numpy() * seconds, 3),
            f"{side}_audio_uri": uri,
        },
        index=table.index,
    )


def _rankings(
    systems: dict[str, SystemScores], view: SplitView, depth: int
) -> dict[str, np.ndarray]:
    """Each system's top ``depth`` clip indices per query (-1 padded)."""
    clip_ids, queries = list(view.clip_ids), np.arange(len(view.query_clips))
    rankings = {}
    for name, s in systems.items():
        valid = view.valid if s.retrieved is None else view.valid & s.retrieved
        slots = rank_candidates(s.clip, clip_ids, valid, depth, view.candidates)
        rankings[name] = view.slot_clips(queries, slots)
    return rankings


def make_audit_kit(
    view: SplitView,
    system_scores: dict[str, SystemScores],
    oracle_scores: dict[str, SystemScores],
    evaluation_per_query: pd.DataFrame,
    clips: pd.DataFrame,
    tracks: pd.DataFrame,
    segments: SegmentStore,
    dataset_version: dict[str, Any],
    params: dict[str, Any],
) -> tuple[dict[str, str], pd.DataFrame, dict[str, Any]]:
    """The blinded kit (CSV + rater page), its unblinding key, and a summary for the report.

    Queries: ``audit.size`` drawn round-robin over ``audit.strata``, among queries with a
    relevant candidate. Candidates: the union of each ``audit.pool_systems``' top
    ``audit.pool_depth``, shuffled per query.
    """
    audit = params["audit"]
    systems = all_systems(system_scores, oracle_scores)
    strata = _strata(view, clips, tracks, evaluation_per_query, list(audit["strata"]))
    judged = np.flatnonzero((view.grades * view.valid >= 1).any(axis=1))
    picked = judged[
        stratified_sample(strata.iloc[judged].reset_index(drop=True), audit["size"], audit["seed"])
    ]
    pooled = {name: systems[name] for name in audit["pool_systems"]}
    pool = pool_candidates(
        _rankings(pooled, view, audit["pool_depth"]), picked, audit["pool_depth"]
    )
    pool["stratum"] = strata.to_numpy()[pool["query"]]
    digest = hashlib.sha256(dataset_version["dataset_version"].encode())
    digest.update(pool[["query", "candidate"]].to_numpy().tobytes())
    kit_id = digest.hexdigest()[:12]
    table = kit_table(pool, view.query_ids, view.clip_ids, audit["seed"], kit_id)
    with segments:
        for side in ("query", "candidate"):
            table = table.join(_clip_times(table, side, clips, tracks, segments))
    table["rater"], table["grade"] = "", ""
    key = table[["kit_id", "item_id", "query_clip_id", "candidate_clip_id"]].join(
        table[["query", "candidate"]]
        .merge(pool, on=["query", "candidate"], how="left")
        .drop(columns=["query", "candidate"])
    )
    kit = {
        "audit_kit.csv": table[KIT_COLUMNS].to_csv(index=False),
        "audit_kit.html": audit_page(table),
        "README.md": _kit_readme(kit_id, len(picked), len(table)),
    }
    summary = {
        "kit_id": kit_id,
        "num_queries": len(picked),
        "num_items": len(table),
        "strata": list(audit["strata"]),
        "num_strata": int(strata.iloc[picked].nunique()),
        "pool_systems": list(audit["pool_systems"]),
        "pool_depth": audit["pool_depth"],
        "audio": bool(table["candidate_audio_uri"].astype(bool).any()),
    }
    logger.info(
        "Audit kit %s: %d queries over %d strata, %d blinded items",
        kit_id,
        summary["num_queries"],
        summary["num_strata"],
        summary["num_items"],
    )
    return kit, key, summary


def _kit_readme(kit_id: str, num_queries: int, num_items: int) -> str:
    return (
        f"# Expressive similarity audit, kit {kit_id}\n\n"
        f"{num_queries} queries, {num_items} candidates to grade 0..3.\n\n"
        "Open `audit_kit.html` in a browser (it works offline), enter your name, grade every\n"
        "candidate and press *Save judgements*: a CSV downloads. Or fill the `rater` and\n"
        "`grade` columns of `audit_kit.csv`. Send the file back to the operator.\n"
    )


def _pending(detail: str, notes: list[str] | None = None) -> dict[str, Any]:
    return {
        "num_raters": 0,
        "num_judgements": 0,
        "notes": notes or [],
        "gate": Verdict("pending", detail).to_dict(),
    }


def ingest_audit_judgements(
    audit_judgements: dict[str, str],
    audit_key: pd.DataFrame,
    view: SplitView,
    system_scores: dict[str, SystemScores],
    oracle_scores: dict[str, SystemScores],
    params: dict[str, Any],
) -> dict[str, Any]:
    """Score every system against returned judgements; the human-audit gate.

    Judgements name (query, candidate) clip pairs, so they stay valid when the models are
    retrained: each system is scored on the judged pairs of the evaluated split with its
    current scores. Pending until a judgement file exists.
    """
    gate = params["gates"]["human_audit"]
    judgements, notes = parse_judgements(audit_judgements or {})
    if judgements.empty:
        return _pending("no judgements returned yet", notes)
    row = pd.Series(np.arange(len(view.query_clips)), index=view.query_ids)
    position = pd.Series(np.arange(len(view.clip_ids)), index=view.clip_ids)
    judgements["query"] = row.reindex(judgements["query_clip_id"]).to_numpy()
    judgements["candidate"] = position.reindex(judgements["candidate_clip_id"]).to_numpy()
    usable = judgements.dropna(subset=["query", "candidate"]).astype(
        {"query": int, "candidate": int}
    )
    if len(usable) < len(judgements):
        notes.append(
            f"{len(judgements) - len(usable)} judgements name clips outside the "
            f"{params['split']} split's queries and candidates"
        )
    if usable.empty:
        return _pending("no judgement names a pair of the evaluated split", notes)
    slots = view.clip_slots(usable["query"].to_numpy(), usable["candidate"].to_numpy())
    if (slots < 0).any():
        notes.append(f"{int((slots < 0).sum())} judgements name pairs outside the evaluation pool")
    usable = usable.assign(slot=slots)[slots >= 0]
    usable = usable[view.valid[usable["query"], usable["slot"]]]
    raters = sorted(usable["rater"].unique())
    ratings = usable.assign(
        item=usable["query"].astype(str) + ":" + usable["candidate"].astype(str)
    )
    alpha = krippendorff_alpha_interval(ratings.rename(columns={"grade": "value"}))
    consensus = usable.groupby(["query", "candidate"], as_index=False)["grade"].mean()
    systems = all_systems(system_scores, oracle_scores)
    per_system = {}
    for name, s in systems.items():
        scores = s.clip if s.retrieved is None else np.where(s.retrieved, s.clip, -np.inf)
        accuracy, pairs = pairwise_preference_accuracy(
            consensus,
            lambda q, c, m=scores: m[q, view.clip_slots(q, c)],
        )
        per_system[name] = {"pairwise_accuracy": accuracy, "pairs": pairs}
    kit_ids = sorted(k for k in usable["kit_id"].dropna().unique() if k)
    if not audit_key.empty and audit_key["kit_id"].iloc[0] in kit_ids:
        graded = audit_key.merge(
            consensus.assign(
                query_clip_id=view.query_ids[consensus["query"]],
                candidate_clip_id=view.clip_ids[consensus["candidate"]],
            ),
            on=["query_clip_id", "candidate_clip_id"],
        )
        for column in (c for c in graded if c.startswith("rank_")):
            name = column.removeprefix("rank_")
            mine = graded[graded[column] > 0]
            per_system[name]["mean_grade_of_pooled_top"] = (
                float(mine["grade"].mean()) if len(mine) else None
            )
    failures = []
    for name in gate["systems"]:
        accuracy = per_system[name]["pairwise_accuracy"]
        if accuracy is None or accuracy < gate["min_pairwise_accuracy"]:
            shown = "no judged pairs" if accuracy is None else f"{accuracy:.3f}"
            failures.append(
                failure(
                    "human_audit",
                    name,
                    f"pairwise preference accuracy {shown} (min {gate['min_pairwise_accuracy']})",
                )
            )
            continue
        for baseline in gate["baselines"]:
            reference = per_system[baseline]["pairwise_accuracy"]
            if reference is not None and accuracy <= reference:
                failures.append(
                    failure(
                        "human_audit",
                        name,
                        f"pairwise preference accuracy {accuracy:.3f} <= {baseline} {reference:.3f}",
                    )
                )
    if len(raters) >= 2 and (alpha is None or alpha < gate["min_alpha"]):
        shown = "undefined" if alpha is None else f"{alpha:.3f}"
        failures.append(
            failure(
                "human_audit",
                "Krippendorff's alpha",
                f"{shown} over {len(raters)} raters (min {gate['min_alpha']})",
            )
        )
    scope = (
        f"{', '.join(gate['systems'])} agree with {len(raters)} rater(s) on at least "
        f"{gate['min_pairwise_accuracy']} of judged pairs"
    )
    logger.info("Human audit: %d raters, %d judgements, alpha %s", len(raters), len(usable), alpha)
    return {
        "num_raters": len(raters),
        "raters": raters,
        "num_judgements": len(usable),
        "num_judged_pairs": len(consensus),
        "kit_ids": kit_ids,
        "krippendorff_alpha_interval": alpha,
        "systems": per_system,
        "notes": notes,
        "gate": Verdict.of(failures, scope).to_dict(),
    }
