"""``export`` end to end on the trained small project, after a real ``evaluation`` run."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from expressive_retrieval.data.segments import clip_refs
from expressive_retrieval.evaluation.gates import report_digest
from expressive_retrieval.evaluation.metrics import RUN_DEPTH
from expressive_retrieval.evaluation.retrieval import TASKS
from expressive_retrieval.pipelines.evaluation.nodes import SYSTEMS
from expressive_retrieval.pipelines.export.nodes import _check_extraction
from expressive_retrieval.serving.bundle import FILES, FOLDERS, MANIFEST_FILE, README_FILE
from tests.pipelines.test_evaluation import LENIENT, overridden

SYSTEM = "projection_distilled_ann"
# The small world's gates are not the default catalogue's: evaluate and bundle regardless.
EXPORT_ANYWAY = {**LENIENT, "export": {"allow_failed_gates": True}}
TEXT_FOLDERS = ["evaluation_runs", "evaluation_qrels", "evaluation_html", "audit_kit"]


def _bundles(project) -> list[Path]:
    return sorted(p for p in (project.data / "09_export").iterdir() if not p.name.startswith("."))


@pytest.fixture(scope="module")
def exported(projected):
    with overridden(projected, EXPORT_ANYWAY):
        projected.run("evaluation")
        projected.run("export")
        yield projected


def test_the_bundle_has_exactly_the_designed_layout(exported) -> None:
    (bundle,) = _bundles(exported)
    found = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    kit = {f"evaluation/audit/{name}" for name in exported.load("audit_kit")}
    evaluation = (
        {f"evaluation/runs/{task}/{system}.trec" for task in TASKS for system in SYSTEMS}
        | {f"evaluation/qrels/{task}.qrels" for task in TASKS}
        | {
            "evaluation/report.html",
            "evaluation/summary.md",
        }
    )
    assert {"evaluation/audit/audit_kit.csv", "evaluation/audit/audit_kit.html"} <= kit
    evaluation |= kit
    assert found == set(FILES.values()) | evaluation | {MANIFEST_FILE, README_FILE}
    manifest = exported.load("artifact_bundle").manifest
    assert manifest["bundle_version"] == bundle.name
    assert manifest["dataset_version"] == exported.load("dataset_version")["dataset_version"]
    config = exported.load("projection_config")
    assert (manifest["L"], manifest["D"]) == (config["num_layers"], config["dim"])
    assert manifest["aspects"] == config["aspects"]


def test_bundled_files_are_the_stored_artifacts_byte_for_byte(exported) -> None:
    (bundle,) = _bundles(exported)
    catalog = exported.catalog()
    for name, path in FILES.items():
        if name.startswith("index"):
            source = Path(catalog.get("clip_index")._get_load_path()) / Path(path).name
        else:
            source = Path(catalog.get(name)._get_load_path())
        assert (bundle / path).read_bytes() == source.read_bytes(), name
    for name in TEXT_FOLDERS:
        for relative, text in catalog.load(name).items():
            assert (bundle / FOLDERS[name] / relative).read_text() == text, (name, relative)


def test_the_bundle_embeds_clips_as_the_pipeline_did(exported) -> None:
    retriever = exported.load("artifact_bundle")
    clips = exported.load("clips").iloc[::40]
    segments = exported.load("segments").clips(clip_refs(clips))
    rows = [retriever.clip_ids.to_pylist().index(c) for c in clips["clip_id"]]
    vectors = np.stack([retriever.embed(s) for s in segments])
    np.testing.assert_allclose(vectors, retriever.clip_vectors[rows], atol=1e-5)


def _run_file(bundle: Path, task: str) -> dict[str, list[tuple[str, float]]]:
    ranked = defaultdict(list)
    for line in (
        (bundle / FOLDERS["evaluation_runs"] / task / f"{SYSTEM}.trec").read_text().splitlines()
    ):
        query, _, candidate, rank, score, _ = line.split()
        ranked[query].append((int(rank), candidate, float(score)))
    return {q: [(c, s) for _, c, s in sorted(hits)] for q, hits in ranked.items()}


@pytest.mark.parametrize("task", ["clip_to_clip", "clip_to_track"])
def test_the_bundle_answers_test_queries_like_its_run_file(exported, task: str) -> None:
    """Issue 6's consistency test: same top-10 as the bundle's projection_distilled_ann run."""
    (bundle,) = _bundles(exported)
    retriever = exported.load("artifact_bundle")
    run = _run_file(bundle, task)
    queries = sorted(run)
    rows = {c: i for i, c in enumerate(retriever.clip_ids.to_pylist())}
    track_of = exported.load("clips").set_index("clip_id")["track_id"]
    own = [[track_of[q]] for q in queries]
    vectors = np.asarray(retriever.clip_vectors)[[rows[q] for q in queries]]
    search = (
        retriever.search_clips_batch if task == "clip_to_clip" else retriever.search_tracks_batch
    )
    results = search(vectors, k=10, exclude_tracks=own, splits=["test"])
    assert len(queries) > 10
    for query, hits in zip(queries, results, strict=True):
        expected = run[query][:10]
        assert [h.id for h in hits] == [c for c, _ in expected], query
        np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], atol=1e-5)
    assert max(len(hits) for hits in run.values()) <= RUN_DEPTH


def test_load_versions_choose_what_is_bundled_and_bundles_accumulate(exported) -> None:
    first = exported.versions("evaluation_html")[-1]
    original = exported.load("evaluation_html")
    exported.catalog().save("evaluation_html", {"report.html": "<html>newer</html>\n"})
    exported.run("export", load_versions={"evaluation_html": first})
    exported.run("export")
    older, pinned, latest = _bundles(exported)
    assert (pinned / "evaluation/report.html").read_text() == original["report.html"]
    assert (latest / "evaluation/report.html").read_text() == "<html>newer</html>\n"
    assert not (latest / "evaluation/summary.md").exists()
    assert (older / "evaluation/report.html").read_text() == original["report.html"]


def test_artifacts_of_another_dataset_version_are_refused(exported) -> None:
    before = _bundles(exported)
    catalog = exported.catalog()
    good = catalog.load("evaluation_report")
    catalog.save("evaluation_report", {**good, "dataset_version": "elsewhere"})
    try:
        with pytest.raises(Exception, match="another dataset version"):
            exported.run("export")
        assert _bundles(exported) == before
        assert not [
            p for p in (exported.data / "09_export").iterdir() if p.name.endswith(".partial")
        ]
    finally:
        exported.catalog().save("evaluation_report", good)  # a new catalog: a new version


def test_a_model_that_failed_an_evaluation_gate_is_not_bundled(exported) -> None:
    before = _bundles(exported)
    catalog = exported.catalog()
    good, verdict = catalog.load("evaluation_report"), catalog.load("evaluation_verdict")
    failed = {
        "status": "failed",
        "detail": "counterfactual: oracle/tempo rose by +0.001",
        "failures": ["counterfactual: oracle/tempo rose by +0.001"],
    }
    bad = {**good, "gates": {**good["gates"], "counterfactual": failed}}
    catalog.save("evaluation_report", bad)
    # The gate step judged this report (and was told to go on).
    catalog.save("evaluation_verdict", {**verdict, "report_sha256": report_digest(bad)})
    try:
        with (
            overridden(exported, {"export": {"allow_failed_gates": False}}),
            pytest.raises(
                Exception, match=r"(?s)gate\(s\) failed:.*counterfactual.*Refusing to bundle"
            ),
        ):
            exported.run("export")
        assert _bundles(exported) == before
        exported.run("export")  # allowed: bundled, and the manifest says so
        manifest = exported.load("artifact_bundle").manifest
        assert manifest["evaluation_gates"]["counterfactual"] == "failed"
    finally:
        exported.catalog().save("evaluation_report", good)
        exported.catalog().save("evaluation_verdict", verdict)


def test_export_waits_for_a_verdict_on_the_report_it_bundles(exported) -> None:
    """A report the gates never judged (e.g. the gate step failed after saving it)."""
    before = _bundles(exported)
    catalog = exported.catalog()
    good = catalog.load("evaluation_report")
    catalog.save("evaluation_report", {**good, "split": "val"})
    try:
        with pytest.raises(Exception, match="not given on this evaluation_report"):
            exported.run("export")
        assert _bundles(exported) == before
    finally:
        exported.catalog().save("evaluation_report", good)


def test_an_extraction_of_other_embeddings_is_refused() -> None:
    config = {"num_layers": 13, "dim": 768}
    _check_extraction({"L": 13, "D": 768}, config)
    with pytest.raises(ValueError, match="extraction records L, D = \\(25, 1024\\)"):
        _check_extraction({"L": 25, "D": 1024}, config)


def test_a_newer_clips_version_than_dataset_version_is_refused(exported) -> None:
    """An interrupted labels_and_splits (newer clips, older dataset_version) bundles nothing."""
    before = _bundles(exported)
    catalog = exported.catalog()
    clips = catalog.load("clips")
    catalog.save("clips", clips.iloc[:10])
    try:
        with pytest.raises(
            Exception, match=r"clips do not match dataset_version.*labels_and_splits"
        ):
            exported.run("export")
        assert _bundles(exported) == before
    finally:
        exported.catalog().save("clips", clips)
