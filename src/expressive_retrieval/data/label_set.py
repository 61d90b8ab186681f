"""One consistent label set: the digests ``dataset_version`` records and their check.

docs/design.md, "Pipelines and catalog names": ``dataset_version`` carries the sha256 of the
published ``clips``, ``splits``, ``pairs``, ``triples``, ``clip_aspect_features`` and
``layer_evidence``; every later pipeline checks what it loads against them, so a run
interrupted between two saves can never yield a model or bundle whose parts disagree.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

LABEL_TABLES = ("clips", "splits", "pairs", "triples", "clip_aspect_features", "layer_evidence")


class LabelSetMismatch(ValueError):
    """A loaded label table is not the one ``dataset_version`` was written for."""


def digest(data: pd.DataFrame | Mapping[str, Any]) -> str:
    """sha256 of a table's content (column names and values) or of a JSON document."""
    if isinstance(data, pd.DataFrame):
        values = pd.util.hash_pandas_object(data, index=False).to_numpy().tobytes()
        return hashlib.sha256(
            json.dumps(list(map(str, data.columns))).encode() + values
        ).hexdigest()
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def verify_label_set(dataset_version: Mapping[str, Any], tables: Mapping[str, Any]) -> None:
    """Refuse label tables whose digest differs from the one in ``dataset_version``.

    Raises:
        LabelSetMismatch: naming each table that differs (or a ``dataset_version`` without
            digests) and saying to re-run ``labels_and_splits``.
    """
    recorded = dataset_version.get("sha256") or {}
    wrong = [
        name
        for name, data in tables.items()
        if name in LABEL_TABLES and recorded.get(name) != digest(data)
    ]
    if wrong:
        raise LabelSetMismatch(
            f"The latest {', '.join(wrong)} do not match dataset_version "
            f"{dataset_version.get('dataset_version')} (its sha256 of "
            f"{'those tables' if recorded else 'the label tables is missing'}): the label set "
            "is inconsistent, e.g. after an interrupted labels_and_splits. Re-run "
            "`kedro run --pipelines=labels_and_splits` (then the pipelines after it); nothing "
            "was written downstream."
        )
