"""Leak-safe split assignment: tracks connected through any group key share a split."""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


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
