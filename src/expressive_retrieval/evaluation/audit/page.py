"""The rater's page of the human-audit kit: one static HTML file, no network.

The kit's items are embedded as JSON; the page shows each query with its blinded
candidates (audio players when the kit has audio URIs), a 0..3 grade per candidate, and a
button that saves the judgements as a CSV (``JUDGEMENT_COLUMNS``) through a Blob download.
Grades are also kept in the browser's local storage, so closing the page loses nothing.
"""

from __future__ import annotations

import pandas as pd

from expressive_retrieval.evaluation.audit.kit import JUDGEMENT_COLUMNS
from expressive_retrieval.evaluation.rendering import render

GRADE_LABELS = {
    0: "0: not played alike",
    1: "1: somewhat alike",
    2: "2: clearly alike",
    3: "3: played the same way",
}


def _clip(row: pd.Series, side: str) -> dict:
    uri = row.get(f"{side}_audio_uri", "")
    return {
        "clip_id": row[f"{side}_clip_id"],
        "start_s": float(row[f"{side}_start_s"]),
        "end_s": float(row[f"{side}_end_s"]),
        "audio_uri": "" if pd.isna(uri) else str(uri),
    }


def audit_page(kit: pd.DataFrame) -> str:
    """The self-contained rater page for the kit rows (one row per blinded item)."""
    queries = []
    for number, group in kit.groupby("query_number", sort=True):
        first = group.iloc[0]
        query = _clip(first, "query") | {"number": int(number), "items": []}
        for _, row in group.iterrows():
            query["items"].append(_clip(row, "candidate") | {"item_id": row["item_id"]})
        queries.append(query)
    kit_id = str(kit["kit_id"].iloc[0]) if len(kit) else "empty"
    return render(
        "audit_kit.html.j2",
        kit_id=kit_id,
        num_queries=len(queries),
        num_items=len(kit),
        legend=list(GRADE_LABELS.values()),
        kit={"kit_id": kit_id, "queries": queries},  # |tojson: "<", ">", "&" escaped
        columns=JUDGEMENT_COLUMNS,
    )
