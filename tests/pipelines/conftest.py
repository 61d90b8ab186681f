"""The trained small project, shared by the oracle, projection, evaluation and export tests.

Training is the slow part of the suite, so it runs once. Tests that alter a file or a
parameter restore it; later runs only add versions.
"""

from __future__ import annotations

import pytest

from benchmarks.scratch import ScratchProject, deep_merge
from tests.pipelines.test_oracle_scorer import ORACLE_DATA

PROJECTION_DATA = deep_merge(
    ORACLE_DATA,
    {
        "oracle_scorer": {"gate": {"fail_on_gate": False}},
        # Several small steps per epoch (the default takes one full-batch step), so that six
        # epochs are enough on this small world.
        "projection_retriever": {
            "progress": False,
            "training": {"epochs": 6, "batch_queries": 96, "lr": 0.004},
        },
    },
)


@pytest.fixture(scope="session")
def projected(tmp_path_factory: pytest.TempPathFactory) -> ScratchProject:
    """Small data run through every pipeline up to ``projection_retriever``."""
    project = ScratchProject(tmp_path_factory.mktemp("projection"), PROJECTION_DATA)
    project.run("synthetic_data", "labels_and_splits", "oracle_scorer", "projection_retriever")
    return project
