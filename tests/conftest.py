"""Shared fixtures: small synthetic projects run through the real catalog and hooks."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchmarks.random_models import save_tiny_model
from benchmarks.scratch import ScratchProject, deep_merge

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

# Small but complete: every pipeline runs on it in seconds.
SMALL_SYNTHETIC = {
    "num_groups": 12,
    "artists_per_group": 2,
    "works_per_group": 2,
    "min_segments": 9,
    "max_segments": 12,
    "num_layers": 5,
    "dim": 32,
}
SMALL = {"synthetic_data": SMALL_SYNTHETIC, "oracle_scorer": {"progress": False}}


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., ScratchProject]:
    """Factory: ``make_project(params)`` → a scratch project on small synthetic data."""
    counter = iter(range(100))

    def make(params: dict[str, Any] | None = None) -> ScratchProject:
        return ScratchProject(tmp_path / f"project{next(counter)}", deep_merge(SMALL, params or {}))

    return make


@pytest.fixture(scope="session")
def labelled_project(tmp_path_factory: pytest.TempPathFactory) -> ScratchProject:
    """One small project with synthetic data and labels, shared read-only by many tests."""
    project = ScratchProject(tmp_path_factory.mktemp("labelled"), SMALL)
    project.run("synthetic_data", "labels_and_splits")
    return project


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random HuBERT checkpoint folder (16 kHz), standing in for MERT offline."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny_hubert"))
