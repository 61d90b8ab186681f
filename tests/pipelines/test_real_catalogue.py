"""The own-data path through the real CLI, on a catalogue the project was not built on.

``tests/real_catalogue.py`` makes one giant work/artist component, probe-style evidence
(negative scores, one aspect missing), other aspect and proxy names, float32 segments.
Only the aspects (the user's own) are configured; the split runs on default parameters.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.scratch import ScratchProject
from expressive_retrieval.data.segments import clip_refs
from expressive_retrieval.data.splits import SPLITS, UNASSIGNED, connected_groups
from tests.real_catalogue import ASPECTS, NO_EVIDENCE, write_catalogue

REPO = Path(__file__).resolve().parents[2]
# Small and quick (a user's run keeps the defaults): dotted overrides change one key each.
QUICK = (
    "oracle_scorer.training.epochs=2,oracle_scorer.progress=false,"
    "projection_retriever.training.epochs=2,projection_retriever.progress=false,"
    "oracle_scorer.gate.fail_on_gate=false,evaluation.gates.fail_on_gate=false,"
    "export.allow_failed_gates=true"
)


def _kedro(project: ScratchProject, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "kedro", "run", f"--conf-source={project.conf}", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


@pytest.fixture(scope="module")
def real_project(tmp_path_factory: pytest.TempPathFactory) -> ScratchProject:
    project = ScratchProject(tmp_path_factory.mktemp("real"), {"aspects": ASPECTS})
    tracks = write_catalogue(project.data / "01_raw")
    assert connected_groups(tracks, ["work_id", "artist_id"]).nunique() == 1
    return project


@pytest.mark.slow
def test_training_runs_end_to_end_through_the_cli(real_project: ScratchProject) -> None:
    done = _kedro(real_project, "--pipelines=training", f"--params={QUICK}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    bundle = real_project.load("artifact_bundle")
    splits = real_project.load("splits")
    counts = splits["split"].value_counts()
    assert counts["val"] >= 4 and counts["test"] >= 4 and counts["train"] > counts["val"]
    assert set(bundle.splits) >= {"train", "val", "test"}
    keyed = real_project.load("tracks").merge(splits, on="track_id")
    assigned = keyed[keyed["split"].isin(SPLITS)]
    for key in ("work_id", "artist_id"):
        assert (assigned.groupby(key)["split"].nunique() == 1).all(), key
    # Unassigned tracks are searchable but in no label set.
    unassigned = set(splits.loc[splits["split"] == UNASSIGNED, "track_id"])
    clips = real_project.load("clips")
    pairs = real_project.load("pairs")
    labelled = clips.set_index("clip_id").loc[pairs["query_clip_id"], "track_id"]
    assert unassigned and not unassigned & set(labelled)
    query = real_project.load("segments").clips(clip_refs(clips.iloc[:1]))[0]
    hits = bundle.search_clips(query, k=len(clips), splits=[UNASSIGNED])
    assert {h.track_id for h in hits} == unassigned
    report = real_project.load("evaluation_report")
    assert report["gates"]
    statuses = {"passed", "failed", "pending", "not_applicable"}
    assert {g["status"] for g in report["gates"].values()} <= statuses
    # A user's catalogue has no twins: selectivity does not apply and blocks nothing.
    assert report["gates"]["aspect_selectivity"]["status"] == "not_applicable"
    assert report["aspect_selectivity"]["twins"] is None
    assert bundle.manifest["evaluation_gates"]["aspect_selectivity"] == "not_applicable"
    evidence = real_project.load("layer_evidence")
    assert evidence[NO_EVIDENCE]["source"] == "probe"
    assert evidence["pulse"]["source"] == "discovery" and min(evidence["pulse"]["layer_scores"]) < 0


@pytest.mark.slow
def test_deprecated_flag_and_dotted_params_through_the_cli(real_project: ScratchProject) -> None:
    # A nested key changes alone: group_keys and the rest of the group are kept.
    done = _kedro(
        real_project,
        "--pipeline=training",
        "--params=labels_and_splits.min_split_size.tracks=10000",
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "group keys work_id, artist_id" in output and "min_split_size" in output, output[-3000:]
    assert "KeyError" not in output
    listed = _kedro(
        real_project, "--pipelines=labels_and_splits,oracle_scorer", "--to-nodes=accept_splits_node"
    )
    assert listed.returncode == 0, listed.stderr[-3000:]
