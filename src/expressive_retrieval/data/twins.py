"""Twins: performances regenerated with one aspect's latent moved (docs/evaluation.md,
"Aspect selectivity").

A twin is a track of its own (``twin_id``) in the ``twin_segments`` folder, listed in the
``twins`` table with the track it copies (``source_track_id``), the aspect whose latent
moved and by how much (``delta``). Twins stay out of the catalogue: labels, splits and
training never read them; the evaluation scores them against their source track.
"""

from __future__ import annotations

import pandas as pd

from expressive_retrieval.data.segments import SegmentStore

TWIN_COLUMNS = ("twin_id", "source_track_id", "aspect", "delta")


def twin_id(track_id: str, aspect: str) -> str:
    """The id of ``track_id``'s twin whose ``aspect`` moved."""
    return f"{track_id}.twin.{aspect}"


def check_twins(
    twins: pd.DataFrame,
    twin_segments: SegmentStore,
    segments: SegmentStore,
    aspects: list[str],
    source_track_ids: list[str],
) -> None:
    """Refuse a twin set that cannot be compared with its sources.

    Rules: the ``TWIN_COLUMNS`` are present; ``twin_id`` is unique and names a file of
    ``twin_segments``; ``aspect`` is one of ``aspects`` and every source has one twin of
    each; ``source_track_id`` is a track of the catalogue; a twin's array has its
    source's shape.

    Args:
        source_track_ids: the catalogue's tracks (``clips``).

    Raises:
        ValueError: naming the rule and the offending ids.
    """
    missing = [c for c in TWIN_COLUMNS if c not in twins.columns]
    problems = [f"missing columns {missing}"] if missing else []
    if not missing:
        rules = {
            "duplicate twin_id": twins.loc[twins["twin_id"].duplicated(), "twin_id"],
            "twin_id without a file in twin_segments": twins.loc[
                ~twins["twin_id"].map(twin_segments.__contains__), "twin_id"
            ],
            f"aspect not one of {aspects}": twins.loc[~twins["aspect"].isin(aspects), "aspect"],
            "source_track_id not a track of the catalogue": twins.loc[
                ~twins["source_track_id"].isin(source_track_ids), "source_track_id"
            ],
        }
        complete = twins.groupby("source_track_id")["aspect"].agg(
            lambda a: sorted(a) == sorted(aspects)
        )
        rules["source without exactly one twin per aspect"] = complete.index[~complete].to_series()
        problems = [f"{rule}: {sorted(set(ids))[:10]}" for rule, ids in rules.items() if len(ids)]
        if not problems:
            shapes = [
                row.twin_id
                for row in twins.itertuples()
                if twin_segments.shape(row.twin_id) != segments.shape(row.source_track_id)
            ]
            if shapes:
                problems.append(f"twin shape differs from its source's: {shapes[:10]}")
    if problems:
        raise ValueError(f"twins ({twin_segments.root}): " + "; ".join(problems))
