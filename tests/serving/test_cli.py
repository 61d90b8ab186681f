"""``expressive-retrieval verify|search``: JSON out, clear refusals, distinct exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from kedro.io import Version

from expressive_retrieval.datasets import BundleDataset
from expressive_retrieval.pipelines.export.nodes import assemble_bundle
from expressive_retrieval.serving import load_bundle
from expressive_retrieval.serving.cli import ReleaseWarning, main
from tests.serving.conftest import with_gates


def _run(capsys, *argv: str) -> tuple[int, object, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, json.loads(out) if code == 0 else out, err


def test_verify_prints_a_summary(capsys, tiny_bundle) -> None:
    code, out, _ = _run(capsys, "verify", str(tiny_bundle.path))
    digest = load_bundle(tiny_bundle.path).bundle_sha256
    assert code == 0 and out["verified"] is True
    assert out["bundle_version"] == tiny_bundle.path.name and out["files"] > 20
    assert out["bundle_sha256"] == digest and out["release"] == "approved"
    code, out, _ = _run(capsys, "verify", str(tiny_bundle.path), "--expect-sha256", digest)
    assert code == 0 and out["bundle_sha256"] == digest
    code, _, err = _run(capsys, "verify", str(tiny_bundle.path), "--expect-sha256", "ab" * 32)
    assert code == 1 and f"bundle_sha256 is {digest}, expected {'ab' * 32}" in err


def test_search_warns_on_a_candidate_release(capsys, tiny_bundle, tmp_path: Path) -> None:
    artifacts = with_gates(tiny_bundle.artifacts, {"human_audit": "pending"})
    BundleDataset(path=str(tmp_path), version=Version(None, "candidate")).save(
        assemble_bundle(**artifacts)
    )
    query = tmp_path / "q.npy"
    np.save(query, tiny_bundle.segments["track_05"][:4])
    code, out, _ = _run(capsys, "verify", str(tmp_path / "candidate"))
    assert code == 0 and out["release"] == "candidate"
    with pytest.warns(ReleaseWarning, match="is a candidate release"):
        code, out, _ = _run(capsys, "search", str(tmp_path / "candidate"), "--query", str(query))
    assert code == 0 and out["release"] == "candidate" and len(out["results"]) == 10


def test_a_tampered_bundle_exits_1(capsys, bundle_copy: Path) -> None:
    (bundle_copy / "projection_retriever" / "config.json").write_text("{}")
    code, _, err = _run(capsys, "verify", str(bundle_copy))
    assert code == 1 and "bundle refused" in err and "config.json" in err


def test_search_clips_and_tracks(capsys, tiny_bundle, tmp_path: Path) -> None:
    query = tmp_path / "q.npy"
    np.save(query, tiny_bundle.segments["track_05"][:4])
    code, out, _ = _run(
        capsys, "search", str(tiny_bundle.path), "--query", str(query), "--k", "3",
        "--weights", "tempo=2,dynamics=1", "--exclude-track", "track_05",
    )  # fmt: skip
    assert code == 0 and out["kind"] == "clips" and len(out["results"]) == 3
    assert {"id", "score", "track_id", "segment_start", "segment_end"} == set(out["results"][0])
    assert all(hit["track_id"] != "track_05" for hit in out["results"])
    batch = tmp_path / "batch.npy"
    np.save(batch, np.stack([tiny_bundle.artifacts["clip_vectors"][i] for i in (0, 9)]))
    code, out, _ = _run(capsys, "search", str(tiny_bundle.path), "--query", str(batch), "--tracks")
    assert code == 0 and out["kind"] == "tracks" and [len(r) for r in out["results"]] == [10, 10]


@pytest.mark.parametrize(
    ("query", "extra", "message"),
    [
        (np.zeros((4, 5, 7), np.float32), [], "query refused"),
        (np.zeros((4, 5, 32), np.float32), ["--weights", "pace=1"], "unknown aspects"),
    ],
)
def test_a_bad_query_exits_2(capsys, tiny_bundle, tmp_path: Path, query, extra, message) -> None:
    path = tmp_path / "q.npy"
    np.save(path, query)
    code, _, err = _run(capsys, "search", str(tiny_bundle.path), "--query", str(path), *extra)
    assert code == 2 and message in err


def test_audio_needs_a_bundle_with_an_extraction_record(capsys, tiny_bundle, tmp_path) -> None:
    audio = tmp_path / "take.wav"
    audio.write_bytes(b"")  # never read: the bundle is refused first
    code, _, err = _run(capsys, "search", str(tiny_bundle.path), "--audio", str(audio))
    assert code == 2 and "no audio_features/extraction.json" in err


def test_the_module_runs_as_a_program(tiny_bundle) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "expressive_retrieval.serving", "verify", str(tiny_bundle.path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["verified"] is True
