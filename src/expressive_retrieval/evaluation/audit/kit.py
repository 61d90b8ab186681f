"""The human audit: a blind judgement kit for a stratified subset of queries, and its scoring.

* **Sampling**: queries are drawn round-robin over strata (e.g. artist, or how hard the
  query is for cosine), so a small kit still covers the catalogue.
* **Pooling**: each query's top candidates from several systems, merged, shuffled and
  blinded (the kit never says which system proposed what; the key does).
* **Judgements**: one CSV per rater, ``JUDGEMENT_COLUMNS``; grades 0..3 as in the qrels.
* **Scoring**: a system's *pairwise preference accuracy* is the share of judged candidate
  pairs of a query (whose mean grades differ) that the system orders the same way (a tie in
  its scores counts one half). Inter-rater agreement is Krippendorff's alpha with the
  interval metric (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability").
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

JUDGEMENT_COLUMNS = ["kit_id", "rater", "item_id", "query_clip_id", "candidate_clip_id", "grade"]
GRADES = (0, 1, 2, 3)


def stratified_sample(strata: pd.Series, size: int, seed: int) -> np.ndarray:
    """Positions of ``size`` rows of ``strata`` (one label per row), round-robin over strata.

    Strata are visited in a seeded random order and rows within each stratum are shuffled,
    so every stratum contributes before any contributes twice.
    """
    rng = np.random.default_rng(seed)
    groups = [rng.permutation(rows) for rows in strata.groupby(strata, sort=True).indices.values()]
    order = rng.permutation(len(groups))
    chosen: list[int] = []
    for depth in range(max((len(g) for g in groups), default=0)):
        for g in order:
            if depth < len(groups[g]) and len(chosen) < size:
                chosen.append(int(groups[g][depth]))
    return np.asarray(chosen, dtype=np.int64)


def pool_candidates(
    rankings: dict[str, np.ndarray], queries: np.ndarray, depth: int
) -> pd.DataFrame:
    """The union of each system's top ``depth`` for every query, with each system's rank.

    Args:
        rankings: per system, ranked candidate positions ``[Q, >= depth]`` (-1 padded).
        queries: query positions to pool for.
        depth: how many of each system's top candidates enter the pool.

    Returns:
        One row per (query, candidate): ``query``, ``candidate`` positions and
        ``rank_<system>`` (1-based, 0 where the candidate is outside that system's top).
    """
    rows: dict[tuple[int, int], dict[str, int]] = {}
    for system, ranked in rankings.items():
        for query in queries:
            for rank, candidate in enumerate(ranked[query, :depth], start=1):
                if candidate >= 0:
                    rows.setdefault((int(query), int(candidate)), {})[f"rank_{system}"] = rank
    frame = pd.DataFrame([{"query": q, "candidate": c, **ranks} for (q, c), ranks in rows.items()])
    rank_columns = [f"rank_{system}" for system in rankings]
    frame = frame.reindex(columns=["query", "candidate", *rank_columns])
    frame[rank_columns] = frame[rank_columns].fillna(0).astype(np.int64)
    return frame


def parse_judgements(files: dict[str, str]) -> tuple[pd.DataFrame, list[str]]:
    """Judgement rows from CSV texts (``{file name: text}``), and a note per skipped file.

    Each CSV needs ``query_clip_id``, ``candidate_clip_id`` and ``grade``; ``rater``
    defaults to the file's name. Rows without a grade in 0..3 are dropped.
    """
    frames, notes = [], []
    for name, text in sorted(files.items()):
        if not name.lower().endswith(".csv"):
            continue
        try:
            frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
            notes.append(f"{name}: not a readable CSV ({error})")
            continue
        missing = {"query_clip_id", "candidate_clip_id", "grade"} - set(frame.columns)
        if missing:
            notes.append(f"{name}: missing columns {sorted(missing)}")
            continue
        if "rater" not in frame or (frame["rater"].str.strip() == "").all():
            frame["rater"] = name.rsplit("/", 1)[-1].removesuffix(".csv")
        frame["grade"] = pd.to_numeric(frame["grade"].str.strip(), errors="coerce")
        frame = frame[frame["grade"].isin(GRADES)]
        frame = frame.assign(grade=frame["grade"].astype(np.int64), file=name)
        frames.append(frame.reindex(columns=[*JUDGEMENT_COLUMNS, "file"]))
    if not frames:
        return pd.DataFrame(columns=[*JUDGEMENT_COLUMNS, "file"]), notes
    judgements = pd.concat(frames, ignore_index=True)
    # A rater who judged the same pair twice counts once: their last grade.
    judgements = judgements.drop_duplicates(
        ["rater", "query_clip_id", "candidate_clip_id"], keep="last"
    )
    return judgements.reset_index(drop=True), notes


def krippendorff_alpha_interval(ratings: pd.DataFrame) -> float | None:
    """Krippendorff's alpha, interval metric, from ``item``, ``rater``, ``value`` rows.

    Items rated by fewer than two raters are not pairable and are left out; ``None`` when
    fewer than two pairable values remain or every value is the same.
    """
    counts = ratings.groupby("item")["value"].transform("size")
    pairable = ratings[counts >= 2]
    values = pairable["value"].to_numpy(dtype=np.float64)
    n = len(values)
    if n < 2:
        return None
    # Observed disagreement: within-item squared differences, each item weighted 1/(m-1).
    observed = 0.0
    for _, group in pairable.groupby("item")["value"]:
        v = group.to_numpy(dtype=np.float64)
        observed += ((v[:, None] - v[None, :]) ** 2).sum() / (len(v) - 1)
    observed /= n
    expected = ((values[:, None] - values[None, :]) ** 2).sum() / (n * (n - 1))
    if expected == 0:
        return None
    return float(1.0 - observed / expected)


def pairwise_preference_accuracy(
    consensus: pd.DataFrame, score: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> tuple[float | None, int]:
    """Share of a query's judged pairs (different mean grades) a system orders the same way.

    Args:
        consensus: ``query``, ``candidate`` positions and mean ``grade`` rows.
        score: the system's scores of ``(query positions, candidate positions)``;
            ``-inf`` for a candidate the system did not return.

    Returns:
        The accuracy (ties in the system's scores count one half; ``None`` without pairs)
        and the number of pairs.
    """
    agree, pairs = 0.0, 0
    for _, group in consensus.groupby("query"):
        grade = group["grade"].to_numpy(dtype=np.float64)
        system = score(group["query"].to_numpy(), group["candidate"].to_numpy())
        i, j = np.triu_indices(len(group), k=1)
        differ = grade[i] != grade[j]
        i, j = i[differ], j[differ]
        human = np.sign(grade[i] - grade[j])
        with np.errstate(invalid="ignore"):  # -inf vs -inf: a tie
            machine = np.nan_to_num(np.sign(system[i] - system[j]), nan=0.0)
        agree += float((human == machine).sum() + 0.5 * (machine == 0).sum())
        pairs += len(i)
    return (agree / pairs if pairs else None), pairs


def kit_table(
    pool: pd.DataFrame,
    query_ids: Sequence[str],
    candidate_ids: Sequence[str],
    seed: int,
    kit_id: str,
) -> pd.DataFrame:
    """The blinded kit rows: pooled pairs shuffled within each query, system ranks dropped.

    Items are numbered ``q<query>-c<candidate>`` in the shuffled order, so an item's id
    says nothing about which system proposed it.
    """
    rng = np.random.default_rng(seed)
    query_ids, candidate_ids = np.asarray(query_ids), np.asarray(candidate_ids)
    rows = []
    for number, (query, group) in enumerate(pool.groupby("query", sort=False), start=1):
        for slot, candidate in enumerate(rng.permutation(group["candidate"].to_numpy()), start=1):
            rows.append(
                {
                    "kit_id": kit_id,
                    "item_id": f"q{number:03d}-c{slot:02d}",
                    "query_number": number,
                    "query": int(query),
                    "candidate": int(candidate),
                    "query_clip_id": query_ids[query],
                    "candidate_clip_id": candidate_ids[candidate],
                }
            )
    return pd.DataFrame(rows)
