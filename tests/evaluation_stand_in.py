"""STAND-IN evaluation outputs, until the ``evaluation`` pipeline (issue 5) lands.

Saves small but real ``evaluation_report``, ``evaluation_runs``, ``evaluation_qrels``,
``evaluation_html`` and ``audit_kit`` through a project's catalog so ``export`` can run:
``projection_distilled_ann`` run files over the test split, computed by exact search
over the projected clip vectors (the default index is exact ``Flat``), with the query's
own track excluded, tracks scored with ``track_scoring``, and the qrels. Replace its uses
with a real ``kedro run --pipelines=evaluation`` once that pipeline exists.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from expressive_retrieval.aspect_vectors import weight_query_vectors
from expressive_retrieval.metrics import write_qrels, write_run
from expressive_retrieval.retrieval_eval import aggregate_clip_scores, split_view

SYSTEM = "projection_distilled_ann"


def _text(write: Any, *args: Any) -> str:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "file"
        write(path, *args)
        return path.read_text(encoding="utf-8")


def save_stand_in_evaluation(catalog: Any, params: dict[str, Any]) -> None:
    """Save the five evaluation outputs through ``catalog`` (``params``: projection's)."""
    clips, ids = catalog.load("clips"), catalog.load("clip_ids")
    version = catalog.load("dataset_version")
    config = catalog.load("projection_config")
    view = split_view(clips, catalog.load("clip_aspect_features"), version["relevance"], "test")
    rows = ids.reset_index().set_index("clip_id").loc[view.clip_ids, "index"].to_numpy()
    vectors = np.asarray(catalog.load("clip_vectors"))[rows]
    queries = weight_query_vectors(vectors, config["default_weights"], len(config["aspects"]))
    scores = queries.astype(np.float64) @ vectors.T.astype(np.float64)
    tracks = aggregate_clip_scores(view, scores, **params["track_scoring"])
    catalog.save(
        "evaluation_runs",
        {
            f"clip_to_clip/{SYSTEM}.trec": _text(
                write_run, view.clip_ids, scores, view.clip_ids, view.valid, SYSTEM
            ),
            f"clip_to_track/{SYSTEM}.trec": _text(
                write_run, view.clip_ids, tracks, view.track_ids, view.track_valid, SYSTEM
            ),
        },
    )
    catalog.save(
        "evaluation_qrels",
        {
            "clip_to_clip.qrels": _text(
                write_qrels, view.clip_ids, view.grades, view.clip_ids, view.valid
            ),
            "clip_to_track.qrels": _text(
                write_qrels, view.clip_ids, view.track_grades, view.track_ids, view.track_valid
            ),
        },
    )
    catalog.save(
        "evaluation_report",
        {
            "dataset_version": version["dataset_version"],
            "bundle_version": None,
            "stand_in": "written by tests/evaluation_stand_in.py until evaluation lands",
        },
    )
    catalog.save(
        "evaluation_html",
        {"report.html": "<html><body>stand-in</body></html>\n", "summary.md": "stand-in\n"},
    )
    catalog.save(
        "audit_kit", {"audit_kit.csv": "item,query,candidate\n", "README.md": "stand-in\n"}
    )
