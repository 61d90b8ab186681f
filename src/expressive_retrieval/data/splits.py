"""Leak-safe splits: tracks connected through any group key share a split, and the leakage
check of published tables (pure pandas; `expectations.leakage_suite` asserts on its frame)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
PAIR_COLUMNS = ("query_clip_id", "candidate_clip_id")
TRIPLE_COLUMNS = ("query_clip_id", "positive_clip_id", "negative_clip_id")
# How a leak names a pair/triple clip missing from `clips`.
UNKNOWN_CLIP = "<unknown clip>"


class SplitError(ValueError):
    """The frozen split cannot absorb the current tracks without a leak."""


def connected_groups(tracks: pd.DataFrame, group_keys: list[str]) -> pd.Series:
    """``group_id`` per track: connected components of tracks sharing any group-key value.

    The id of a group is its smallest ``track_id``, so it does not depend on row order.
    """
    ids = tracks["track_id"].to_numpy()
    parent = np.arange(len(ids))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for key in group_keys:
        codes = pd.factorize(tracks[key])[0]
        first: dict[int, int] = {}
        for i, code in enumerate(codes):
            j = first.setdefault(code, i)
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    roots = np.array([find(i) for i in range(len(ids))])
    root_names = pd.Series(ids).groupby(roots).transform("min").to_numpy()
    return pd.Series(root_names, index=tracks.index, name="group_id")


def _group_order(group_ids: list[str], seed: int) -> list[str]:
    """A seeded order that depends only on each group's id, not on which others exist."""
    key = {g: hashlib.sha256(f"{seed}:{g}".encode()).hexdigest() for g in group_ids}
    return sorted(group_ids, key=key.__getitem__)


def _assign_groups(
    sizes: pd.Series, fractions: dict[str, float], seed: int, counts: dict[str, int]
) -> dict[str, str]:
    """Greedy: each group (in seeded order) goes to the split furthest below its share."""
    total = sum(counts.values()) + int(sizes.sum())
    weights = np.array([fractions[s] for s in SPLITS], dtype=np.float64)
    weights /= weights.sum()
    assignment = {}
    for group in _group_order(list(sizes.index), seed):
        deficit = [weights[i] * total - counts[s] for i, s in enumerate(SPLITS)]
        split = SPLITS[int(np.argmax(deficit))]
        assignment[group] = split
        counts[split] += int(sizes[group])
    return assignment


def assign_splits(
    tracks: pd.DataFrame,
    group_keys: list[str],
    fractions: dict[str, float],
    seed: int,
    previous: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """``track_id, group_id, split`` for every track.

    Args:
        tracks: the ``tracks`` table.
        group_keys: columns whose shared values connect tracks (e.g. work_id, artist_id).
        fractions: target share of tracks per split (train, val, test).
        seed: seeds the group order.
        previous: a frozen split to keep; its tracks keep their split, new tracks join the
            split of their group, and wholly new groups are assigned greedily.

    Raises:
        SplitError: when current tracks connect groups that the frozen split put in
            different splits (a leak only a resplit can fix).
    """
    groups = connected_groups(tracks, group_keys)
    frame = pd.DataFrame({"track_id": tracks["track_id"].to_numpy(), "group_id": groups.to_numpy()})
    frozen = (
        pd.Series(dtype=object)
        if previous is None or previous.empty
        else previous.set_index("track_id")["split"]
    )
    known = frame["track_id"].map(frozen)
    per_group = known.groupby(frame["group_id"]).agg(lambda s: sorted(set(s.dropna())))
    clashes = per_group[per_group.map(len) > 1]
    if len(clashes):
        detail = "; ".join(f"group {g}: {', '.join(s)}" for g, s in clashes.head(10).items())
        raise SplitError(
            f"{len(clashes)} group(s) now join tracks that the frozen split keeps in different "
            f"splits ({detail}). Set `resplit: true` in parameters_labels_and_splits.yml to "
            "draw a new split."
        )
    dropped = set(frozen.index) - set(frame["track_id"])
    if dropped:
        logger.warning("%d track(s) of the frozen split are gone from tracks", len(dropped))
    group_split = per_group[per_group.map(len) == 1].map(lambda s: s[0])
    counts = {s: int((frame["group_id"].map(group_split) == s).sum()) for s in SPLITS}
    new_sizes = frame.loc[~frame["group_id"].isin(group_split.index), "group_id"].value_counts()
    if len(new_sizes):
        group_split = pd.concat(
            [group_split, pd.Series(_assign_groups(new_sizes, fractions, seed, counts))]
        )
    frame["split"] = frame["group_id"].map(group_split)
    return frame


# ------------------------------------------------------------------------------- leakage


def _ordered(splits: Iterable[Any]) -> list[str]:
    """Distinct split names, canonical ones first (train, val, test), then the rest sorted."""
    names = {str(s) for s in splits}
    return [s for s in SPLITS if s in names] + sorted(names - set(SPLITS))


def _grouped(rows: pd.DataFrame, key: str, kind: str) -> tuple[pd.DataFrame, list[dict]]:
    """Rows and leaks for entities given as distinct (`key`, split) rows."""
    counts = rows.groupby(key, sort=True)["split"].nunique()
    frame = pd.DataFrame(
        {"kind": kind, "id": counts.index.astype(str), "num_splits": counts.to_numpy(dtype=int)}
    )
    bad = rows[rows[key].isin(counts.index[counts.to_numpy() != 1])]
    leaks = [
        {"kind": kind, "id": str(k), "splits": _ordered(g)}
        for k, g in bad.groupby(key, sort=True)["split"]
    ]
    return frame, leaks


def _row_entities(
    table: pd.DataFrame, columns: Sequence[str], clip_split: pd.Series, kind: str
) -> tuple[pd.DataFrame, list[dict]]:
    """Rows and leaks for pairs/triples: the splits of their clips (and own `split` column)."""
    assigned = {c: table[c].map(clip_split) for c in columns}
    if "split" in table.columns:
        assigned["split"] = table["split"]
    matrix = pd.DataFrame(assigned).to_numpy(dtype=object)
    codes = pd.factorize(matrix.ravel())[0].reshape(matrix.shape)
    known = codes >= 0
    num = np.ones(len(table), dtype=int)
    for j in range(1, codes.shape[1]):
        num += np.all(codes[:, [j]] != codes[:, :j], axis=1)
    num[~known.all(axis=1)] = 0
    ids = table[columns[0]].astype(str)
    for column in columns[1:]:
        ids = ids + "|" + table[column].astype(str)
    frame = pd.DataFrame({"kind": kind, "id": ids.to_numpy(dtype=str), "num_splits": num})
    leaks = [
        {
            "kind": kind,
            "id": frame["id"].iat[i],
            "splits": _ordered(matrix[i][known[i]]) + ([UNKNOWN_CLIP] * (not known[i].all())),
        }
        for i in np.flatnonzero(num != 1)
    ]
    return frame, leaks


def leakage(
    splits: pd.DataFrame,
    tracks: pd.DataFrame,
    group_keys: list[str],
    clips: pd.DataFrame,
    pairs: pd.DataFrame,
    triples: pd.DataFrame,
) -> tuple[pd.DataFrame, list[dict]]:
    """The leakage check of published tables: a frame of checked entities, and the leaks.

    The frame has one row per checked entity: `kind`, `id`, `num_splits` (distinct splits
    it appears in). Kinds: "track" (its `splits` row and its clips' splits), "group_id" (the
    `splits` groups), each group key (the splits of all tracks having the value), "pair" /
    "triple" (the splits of its clips, plus a pair's own `split` column if present; 0 when a
    clip is not in `clips`; id "query|candidate" / "query|positive|negative"). No leak <=>
    every `num_splits` == 1. The leaks list each such entity as ``{kind, id, splits}``.
    """
    missing = [k for k in group_keys if k not in tracks.columns]
    if missing:
        raise ValueError(f"tracks lacks group key column(s): {', '.join(missing)}")
    track_split = (
        pd.concat([splits[["track_id", "split"]], clips[["track_id", "split"]]])
        .dropna()
        .drop_duplicates()
    )
    parts = [
        _grouped(track_split, "track_id", "track"),
        _grouped(splits[["group_id", "split"]].dropna().drop_duplicates(), "group_id", "group_id"),
    ]
    for key in group_keys:
        keyed = tracks[["track_id", key]].dropna().merge(track_split, on="track_id")
        parts.append(_grouped(keyed[[key, "split"]].drop_duplicates(), key, key))
    clip_split = clips.drop_duplicates("clip_id").set_index("clip_id")["split"]
    parts.append(_row_entities(pairs, PAIR_COLUMNS, clip_split, "pair"))
    parts.append(_row_entities(triples, TRIPLE_COLUMNS, clip_split, "triple"))
    frame = pd.concat([f for f, _ in parts], ignore_index=True)
    return frame, [leak for _, leaks in parts for leak in leaks]
