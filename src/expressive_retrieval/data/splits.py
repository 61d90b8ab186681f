"""Leak-safe splits: tracks connected through any group key share a split, and the leakage
check of published tables (pure pandas; `expectations.leakage_suite` asserts on its frame)."""

from __future__ import annotations

import hashlib
import heapq
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse import csgraph

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
# Tracks whose key values fall in two splits: in the corpus, never in labels or metrics.
UNASSIGNED = "unassigned"
PAIR_COLUMNS = ("query_clip_id", "candidate_clip_id")
TRIPLE_COLUMNS = ("query_clip_id", "positive_clip_id", "negative_clip_id")
# How a leak names a pair/triple clip missing from `clips`.
UNKNOWN_CLIP = "<unknown clip>"


class SplitError(ValueError):
    """The frozen split cannot absorb the current tracks without a leak."""


@dataclass(frozen=True)
class _Graph:
    """Tracks as hyperedges over key-value nodes (one node per (key, value))."""

    track_nodes: np.ndarray  # [n_tracks, n_keys] node ids
    node_tracks: sparse.csr_matrix  # [n_nodes, n_tracks] incidence
    rank: np.ndarray  # [n_nodes] seeded order, independent of row order
    names: list[str]  # "key=value" per node, for messages
    track_ids: np.ndarray  # [n_tracks]
    seed: int


def _graph(tracks: pd.DataFrame, group_keys: list[str], seed: int) -> _Graph:
    columns, names, offset = [], [], 0
    for key in group_keys:
        codes, values = pd.factorize(tracks[key].astype(str))
        columns.append(codes + offset)
        names += [f"{key}={v}" for v in values]
        offset += len(values)
    track_nodes = np.stack(columns, axis=1) if columns else np.zeros((len(tracks), 0), int)
    rows = np.repeat(np.arange(len(tracks)), len(group_keys))
    incidence = sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.int8), (track_nodes.ravel(), rows)),
        shape=(offset, len(tracks)),
    )
    digests = [hashlib.sha256(f"{seed}:{n}".encode()).digest()[:8] for n in names]
    rank = np.argsort(np.argsort([int.from_bytes(d, "big") for d in digests], kind="stable"))
    return _Graph(track_nodes, incidence, rank, names, tracks["track_id"].to_numpy(), seed)


def _components(graph: _Graph, links: np.ndarray, layer: np.ndarray | None = None) -> np.ndarray:
    """Component label per track, tracks linked through the key values where ``links``.

    ``links`` is ``[n_tracks, n_keys]`` bool: which of a track's key values link it. With
    ``layer`` (an int per track), a key value links only tracks of the same layer.
    """
    n_tracks, n_nodes = len(graph.track_nodes), graph.node_tracks.shape[0]
    layer = np.zeros(n_tracks, dtype=np.int64) if layer is None else layer
    rows, keys = np.nonzero(links)
    cols = n_tracks + graph.track_nodes[rows, keys] + layer[rows] * n_nodes
    size = n_tracks + n_nodes * (int(layer.max(initial=0)) + 1)
    adjacency = sparse.coo_matrix(
        (np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(size, size)
    )
    return csgraph.connected_components(adjacency, directed=False)[1][:n_tracks]


def connected_groups(tracks: pd.DataFrame, group_keys: list[str]) -> pd.Series:
    """``group_id`` per track: connected components of tracks sharing any group-key value.

    The id of a group is its smallest ``track_id``, so it does not depend on row order.
    """
    graph = _graph(tracks, group_keys, 0)
    return _named(tracks["track_id"], _components(graph, np.ones_like(graph.track_nodes, bool)))


def _named(track_ids: pd.Series, labels: np.ndarray) -> pd.Series:
    names = pd.Series(track_ids.to_numpy()).groupby(labels).transform("min").to_numpy()
    return pd.Series(names, index=track_ids.index, name="group_id")


def _grow_region(
    graph: _Graph, candidates: np.ndarray, owner: np.ndarray, target: int
) -> np.ndarray:
    """Key-value nodes of a region holding about ``target`` candidate tracks whole.

    Greedy growth from the seeded first node: add the frontier node that closes the largest
    share of its open tracks (all of whose key values are then in the region), so that few
    tracks straddle the region's border. ``owner`` marks nodes taken by earlier regions
    (-1 = free); tracks touching them are out of reach.
    """
    track_nodes, incidence = graph.track_nodes, graph.node_tracks
    open_track = candidates & (owner[track_nodes] < 0).all(axis=1)
    missing = np.where(open_track, track_nodes.shape[1], 0)
    degree = np.asarray(incidence @ open_track.astype(np.int64)).ravel()
    gain = np.zeros(len(degree), dtype=np.int64)
    in_region = np.zeros(len(degree), dtype=bool)
    free = np.flatnonzero((degree > 0) & (owner < 0))
    starts = iter(free[np.argsort(graph.rank[free], kind="stable")])
    heap: list[tuple[float, int, int, int]] = []
    closed = 0
    while closed < target:
        if heap:
            _, _, _, node = heapq.heappop(heap)
            if in_region[node]:
                continue
        else:
            node = next((n for n in starts if not in_region[n]), -1)
            if node < 0:
                break
        in_region[node] = True
        touched = set()
        for t in incidence.indices[incidence.indptr[node] : incidence.indptr[node + 1]]:
            if not open_track[t]:
                continue
            missing[t] -= 1
            closed += missing[t] == 0
            rest = [n for n in track_nodes[t] if not in_region[n]]
            if len(rest) == 1:
                gain[rest[0]] += 1
            touched.update(rest)
        for n in touched:
            heapq.heappush(heap, (-gain[n] / degree[n], -int(gain[n]), int(graph.rank[n]), n))
    return np.flatnonzero(in_region)


def _partition(
    graph: _Graph, members: np.ndarray, owner: np.ndarray, targets: dict[str, float]
) -> None:
    """Grow one region per held-out split inside ``members`` (tracks); train keeps the rest."""
    candidates = np.zeros(len(graph.track_nodes), dtype=bool)
    candidates[members] = True
    for code, split in enumerate(SPLITS[1:], start=1):
        region = _grow_region(graph, candidates, owner, round(targets[split]))
        owner[region] = code


def _track_splits(graph: _Graph, owner: np.ndarray) -> np.ndarray:
    """A track's split is its key values' split when they agree, else ``unassigned``."""
    codes = np.where(owner < 0, 0, owner)[graph.track_nodes]
    agree = (codes == codes[:, :1]).all(axis=1)
    names = np.array([*SPLITS, UNASSIGNED], dtype=object)
    return names[np.where(agree, codes[:, 0], len(SPLITS))]


def _fresh(
    graph: _Graph,
    members: np.ndarray,
    owner: np.ndarray,
    fractions: dict[str, float],
    counts: dict[str, int],
) -> None:
    """Assign the key values of ``members`` (tracks new to every split) into ``owner``.

    Components no larger than the largest split's target go whole to the split furthest
    below its share (seeded order); larger ones are partitioned by region growth.
    """
    weights = np.array([fractions[s] for s in SPLITS], dtype=np.float64)
    weights /= weights.sum()
    total = sum(counts.get(s, 0) for s in SPLITS) + len(members)
    links = np.zeros_like(graph.track_nodes, dtype=bool)
    links[members] = True
    labels = _components(graph, links)[members]
    sizes = pd.Series(labels).value_counts()
    limit = weights.max() * total
    for label in sizes.index[sizes.to_numpy() > limit]:
        component = members[labels == label]
        share = len(component) / total
        _partition(
            graph,
            component,
            owner,
            {s: w * share * total for s, w in zip(SPLITS, weights, strict=True)},
        )
        for split, n in pd.Series(_track_splits(graph, owner)[component]).value_counts().items():
            counts[split] = counts.get(split, 0) + int(n)
    small = sizes.index[sizes.to_numpy() <= limit]
    # Seeded by the component's id (its smallest track_id) alone, so adding components
    # does not reshuffle the others.
    first = pd.Series(graph.track_ids[members]).groupby(labels).min()
    order = {
        lab: hashlib.sha256(f"{graph.seed}:{first[lab]}".encode()).hexdigest() for lab in small
    }
    for label in sorted(small, key=order.__getitem__):
        deficit = [weights[i] * total - counts.get(s, 0) for i, s in enumerate(SPLITS)]
        code = int(np.argmax(deficit))
        component = members[labels == label]
        owner[np.unique(graph.track_nodes[component])] = code
        counts[SPLITS[code]] = counts.get(SPLITS[code], 0) + len(component)


def assign_splits(
    tracks: pd.DataFrame,
    group_keys: list[str],
    fractions: dict[str, float],
    seed: int,
    previous: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """``track_id, group_id, split`` for every track; no key value in two splits.

    Tracks connected through shared key values form components. A component no larger
    than the largest split's target goes whole to one split. A larger one (a
    real catalogue's work/artist graph is one giant component) is partitioned: a region of
    key values is grown for val, then for test, closing as many tracks as possible (see
    ``_grow_region``); train keeps the rest. Tracks whose key values end up in two splits
    are ``unassigned``: in the corpus, never in labels. ``group_id`` names the connected
    group of a track within its split (smallest ``track_id``).

    Args:
        tracks: the ``tracks`` table.
        group_keys: columns whose shared values connect tracks (e.g. work_id, artist_id).
        fractions: target share of tracks per split (train, val, test).
        seed: seeds the order in which key values are visited.
        previous: a frozen split to keep; its tracks keep their split, new tracks join the
            split their key values already have (``unassigned`` when those disagree), and
            tracks with only new key values are assigned as above.

    Raises:
        SplitError: when current tracks put one key value in two frozen splits (a leak only
            a resplit can fix).
    """
    graph = _graph(tracks, group_keys, seed)
    owner = np.full(graph.node_tracks.shape[0], -1, dtype=np.int64)
    frozen = (
        pd.Series(dtype=object)
        if previous is None or previous.empty
        else previous.set_index("track_id")["split"]
    )
    split = tracks["track_id"].map(frozen).to_numpy(dtype=object)
    dropped = set(frozen.index) - set(tracks["track_id"])
    if dropped:
        logger.warning("%d track(s) of the frozen split are gone from tracks", len(dropped))
    new = pd.isna(split)
    _claim_frozen(graph, np.where(new, None, split), owner)
    untouched = _join_frozen(graph, new, owner, split)
    if len(untouched):
        counts = pd.Series(split[~pd.isna(split)]).value_counts().to_dict()
        _fresh(graph, untouched, owner, fractions, counts)
        split[untouched] = _track_splits(graph, owner)[untouched]
    split = split.astype(str)
    layer = pd.Series(split).map({s: i for i, s in enumerate([*SPLITS, UNASSIGNED])}).to_numpy()
    labels = _components(graph, np.ones_like(graph.track_nodes, dtype=bool), layer)
    return pd.DataFrame(
        {
            "track_id": tracks["track_id"].to_numpy(),
            "group_id": _named(tracks["track_id"], labels).to_numpy(),
            "split": split,
        }
    )


def _claim_frozen(graph: _Graph, split: np.ndarray, owner: np.ndarray) -> None:
    """Give each key value of a frozen, assigned track that track's split.

    Raises:
        SplitError: naming key values that the current tracks put in two frozen splits.
    """
    code = pd.Series(split).map({s: i for i, s in enumerate(SPLITS)}).to_numpy()
    held = ~np.isnan(code)
    nodes = graph.track_nodes[held].ravel()
    codes = np.repeat(code[held].astype(np.int64), graph.track_nodes.shape[1])
    per_node = pd.Series(codes).groupby(nodes).agg(lambda c: sorted(set(c)))
    clashes = per_node[per_node.map(len) > 1]
    if len(clashes):
        detail = "; ".join(
            f"{graph.names[n]}: {', '.join(SPLITS[c] for c in codes)}"
            for n, codes in clashes.head(10).items()
        )
        raise SplitError(
            f"{len(clashes)} key value(s) now belong to tracks that the frozen split keeps in "
            f"different splits ({detail}). Set `resplit: true` in "
            "parameters_labels_and_splits.yml (or --params=labels_and_splits.resplit=true) "
            "to draw a new split."
        )
    owner[per_node.index.to_numpy()] = [c[0] for c in per_node]


def _join_frozen(
    graph: _Graph, new: np.ndarray, owner: np.ndarray, split: np.ndarray
) -> np.ndarray:
    """New tracks join the split their known key values have; returns the untouched ones.

    New tracks linked through key values no split holds yet form components; a component
    touching one split joins it, one touching several is ``unassigned``, one touching none
    is left for a fresh assignment.
    """
    held = owner[graph.track_nodes]  # [n_tracks, n_keys] split code or -1
    labels = _components(graph, new[:, None] & (held < 0))
    touch = pd.DataFrame({"label": np.repeat(labels, held.shape[1]), "code": held.ravel()})
    touch = touch[np.repeat(new, held.shape[1]) & (touch["code"].to_numpy() >= 0)]
    reached = touch.groupby("label")["code"].agg(lambda c: sorted(set(c)))
    label_split = reached.map(lambda c: SPLITS[c[0]] if len(c) == 1 else UNASSIGNED)
    joined = new & pd.Series(labels).isin(label_split.index).to_numpy()
    split[joined] = pd.Series(labels[joined]).map(label_split).to_numpy()
    kept = np.flatnonzero(joined & (split != UNASSIGNED))
    codes = pd.Series(split[kept]).map({s: i for i, s in enumerate(SPLITS)}).to_numpy()
    owner[graph.track_nodes[kept]] = codes[:, None]
    return np.flatnonzero(new & ~joined)


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
    """Rows and leaks for pairs/triples: the splits of their clips (and own `split` column).

    Splits are integer codes (-1: the clip is unknown or has no split) and ids stay pandas
    strings, so a table of millions of pairs costs a few bytes per cell, not a Python object.
    """
    own = table["split"] if "split" in table.columns else pd.Series(dtype=object)
    names = pd.Index(pd.unique(pd.concat([clip_split, own]).dropna()))
    clip_codes = np.append(names.get_indexer(clip_split), -1)  # position -1: unknown clip
    codes = np.stack(
        [clip_codes[clip_split.index.get_indexer(table[c])] for c in columns]
        + ([names.get_indexer(own)] if "split" in table.columns else []),
        axis=1,
    )
    known = codes >= 0
    num = np.ones(len(table), dtype=int)
    for j in range(1, codes.shape[1]):
        num += np.all(codes[:, [j]] != codes[:, :j], axis=1)
    num[~known.all(axis=1)] = 0
    ids = table[columns[0]].astype(str)
    for column in columns[1:]:
        ids = ids + "|" + table[column].astype(str)
    frame = pd.DataFrame({"kind": kind, "id": ids.reset_index(drop=True), "num_splits": num})
    leaks = [
        {
            "kind": kind,
            "id": frame["id"].iat[i],
            "splits": _ordered(names[codes[i][known[i]]]) + ([UNKNOWN_CLIP] * (not known[i].all())),
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
    `splits` groups), each group key (the splits of all assigned tracks having the value), "pair" /
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
    # An unassigned track shares key values with the splits it would bridge, by design.
    assigned = track_split[track_split["split"] != UNASSIGNED]
    for key in group_keys:
        keyed = tracks[["track_id", key]].dropna().merge(assigned, on="track_id")
        parts.append(_grouped(keyed[[key, "split"]].drop_duplicates(), key, key))
    clip_split = clips.drop_duplicates("clip_id").set_index("clip_id")["split"]
    parts.append(_row_entities(pairs, PAIR_COLUMNS, clip_split, "pair"))
    parts.append(_row_entities(triples, TRIPLE_COLUMNS, clip_split, "triple"))
    frame = pd.concat([f for f, _ in parts], ignore_index=True)
    return frame, [leak for _, leaks in parts for leak in leaks]
