"""``audio_features``: recordings → the raw contract, resumable, refusing bad audio; then
``training`` through the real kedro CLI on its output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

from benchmarks.random_models import save_tiny_model
from benchmarks.scratch import REPO, ScratchProject
from expressive_retrieval.audio.embedding import ModelMismatchError
from expressive_retrieval.audio.proxies import PROXY_COLUMNS
from expressive_retrieval.data.contract import InputContractError
from expressive_retrieval.hooks import RawInputsRefused
from expressive_retrieval.pipelines.audio_features.nodes import extract_audio_features
from expressive_retrieval.serving import load_bundle
from expressive_retrieval.serving.cli import main
from tests.audio.signals import RATE, note_train

# Short segments keep the whole path (12 recordings → training → bundle) within seconds.
FAST = {
    "audio_features": {"progress": False, "segment_seconds": 1.0, "min_last_segment_seconds": 0.5},
    "labels_and_splits": {"clip_segments": 3, "clip_hop_segments": 1},
    "oracle_scorer": {
        "progress": False,
        "training": {"epochs": 2},
        "gate": {"fail_on_gate": False},
    },
    "projection_retriever": {"progress": False, "training": {"epochs": 2}},
    "evaluation": {"gates": {"fail_on_gate": False}},
    "export": {"allow_failed_gates": True},
}


STYLES = [  # three ways of playing: tempo, level, harmonics (timbre), attack, arc
    {"bpm": 90.0, "gain_db": -20.0, "harmonics": 1, "attack_s": 0.06, "arc_db": 0.0},
    {"bpm": 120.0, "gain_db": -12.0, "harmonics": 4, "attack_s": 0.01, "arc_db": 6.0},
    {"bpm": 150.0, "gain_db": -6.0, "harmonics": 9, "attack_s": 0.002, "arc_db": 12.0},
]


def write_recordings(
    project: ScratchProject, groups: int = 6, seconds: float = 6.3
) -> pd.DataFrame:
    """``groups`` works, each played by two artists in the work's style (with jitter), so
    that every split holds performances alike in expression."""
    folder = project.data / "01_raw" / "audio"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    rows = []
    for g in range(groups):
        for a in range(2):
            track_id = f"trk{g}{a}"
            style = STYLES[g % len(STYLES)]
            samples = note_train(
                seconds,
                bpm=style["bpm"] * rng.uniform(0.97, 1.03),
                gain_db=style["gain_db"] + rng.uniform(-1, 1),
                harmonics=style["harmonics"],
                attack_s=style["attack_s"],
                arc_db=style["arc_db"],
                seed=g * 2 + a,
            )
            soundfile.write(folder / f"{track_id}.flac", samples, RATE)
            rows.append(
                {
                    "track_id": track_id,
                    "artist_id": f"art{g}{a}",
                    "work_id": f"wrk{g}",
                    "path": f"{track_id}.flac",
                    "audio_uri": f"s3://bucket/{track_id}.flac",
                }
            )
    recordings = pd.DataFrame(rows)
    recordings.to_csv(project.data / "01_raw" / "recordings.csv", index=False)
    return recordings


def _project(root: Path, model: Path) -> ScratchProject:
    project = ScratchProject(root, FAST)
    project.set_params({"audio_features": {"model": str(model)}})
    return project


@pytest.fixture
def audio_project(tmp_path: Path, tiny_model: Path) -> ScratchProject:
    return _project(tmp_path / "audio", tiny_model)


def _kedro(project: ScratchProject, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "MPLBACKEND": "Agg"}
    kedro = Path(sys.executable).with_name("kedro")
    return subprocess.run(
        [str(kedro), "run", f"--conf-source={project.conf}", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> ScratchProject:
    """12 recordings → audio_features → training → a bundle, all through the kedro CLI."""
    project = _project(tmp_path_factory.mktemp("audio_trained"), tiny_model)
    write_recordings(project)
    done = _kedro(project, "--pipeline=audio_features")
    assert done.returncode == 0, done.stderr[-3000:]
    done = _kedro(project, "--pipelines=training")
    assert done.returncode == 0, done.stderr[-3000:]
    return project


def _bundle(project: ScratchProject) -> Path:
    return sorted((project.data / "09_export").iterdir())[-1]


def test_audio_then_training_through_the_cli(trained: ScratchProject) -> None:
    raw = trained.data / "01_raw"
    recordings = pd.read_csv(raw / "recordings.csv")
    tracks = pd.read_parquet(raw / "tracks.parquet")
    assert tracks["track_id"].tolist() == recordings["track_id"].tolist()
    assert tracks["audio_uri"].tolist() == recordings["audio_uri"].tolist()  # extras carried
    np.testing.assert_allclose(tracks["duration_s"], 6.3, atol=1e-3)
    proxies = pd.read_parquet(raw / "proxy_targets.parquet")
    assert len(proxies) == 12 * 6  # six 1 s segments; the 0.3 s remainder is dropped
    assert list(proxies.columns[2:]) == list(PROXY_COLUMNS)
    style = proxies["track_id"].str[3].astype(int) % len(STYLES)
    assert proxies.groupby(style)["loudness_db"].median().is_monotonic_increasing  # -20, -12, -6
    discovery = json.loads((raw / "discovery.json").read_text())
    assert discovery["aspects"] == {} and discovery["embedding"]["num_layers"] == 3
    extraction = json.loads((raw / "extraction.json").read_text())
    assert (extraction["L"], extraction["D"]) == (3, 32)
    assert extraction["segmentation"]["segment_seconds"] == 1.0
    assert np.load(raw / "segments" / "trk00.npy").shape == (6, 3, 32)
    report = trained.load("raw_inputs_validation")
    assert report["passed"] and report["num_segments_total"] == 72
    assert any("probe" in w for w in report["warnings"])  # no discovery: probes supply it
    bundled = json.loads((_bundle(trained) / "audio_features" / "extraction.json").read_text())
    assert bundled == extraction


def test_embed_audio_reproduces_the_corpus_and_refuses_other_weights(
    trained: ScratchProject, tiny_model: Path, tmp_path: Path
) -> None:
    retriever = load_bundle(_bundle(trained))
    audio = trained.data / "01_raw" / "audio" / "trk21.flac"
    segments = retriever.embed_audio(audio)
    np.testing.assert_array_equal(
        segments, np.load(trained.data / "01_raw" / "segments" / "trk21.npy")
    )
    samples, rate = soundfile.read(audio, dtype="float32")
    from_array = retriever.embed_audio(samples, sample_rate=rate)
    np.testing.assert_array_equal(from_array, segments)
    hits = retriever.search_tracks(segments, k=3, exclude_tracks=["trk21"])
    assert len(hits) == 3 and "trk21" not in {h.track_id for h in hits}
    with pytest.raises(ModelMismatchError):
        retriever.embed_audio(audio, model=save_tiny_model(tmp_path / "other", seed=5))


def test_search_audio_through_the_cli(trained: ScratchProject, capsys) -> None:
    audio = trained.data / "01_raw" / "audio" / "trk10.flac"
    main(["search", str(_bundle(trained)), "--audio", str(audio), "--tracks", "--k", "2"])
    result = json.loads(capsys.readouterr().out)
    assert result["kind"] == "tracks" and len(result["results"]) == 2


def _params(project: ScratchProject) -> dict:
    return project.catalog().load("params:audio_features")


def test_unchanged_tracks_are_not_recomputed(audio_project: ScratchProject) -> None:
    recordings = write_recordings(audio_project, groups=2)
    params, scale = _params(audio_project), audio_project.catalog().load("params:scale")
    cache = Path(params["files"]["cache"])
    extract_audio_features(recordings, params, scale)
    written = {t: (cache / t / "meta.json").stat().st_mtime_ns for t in recordings["track_id"]}
    audio = audio_project.data / "01_raw" / "audio"
    soundfile.write(audio / "trk10.flac", note_train(6.3, 97), RATE)  # one recording changes
    tracks, *_ = extract_audio_features(recordings, params, scale)
    again = {t: (cache / t / "meta.json").stat().st_mtime_ns for t in recordings["track_id"]}
    assert [t for t in written if written[t] != again[t]] == ["trk10"]
    changed = extract_audio_features(recordings, {**params, "segment_seconds": 2.0}, scale)
    assert changed[1]["trk00"]().shape[0] == 3  # new settings: measured again
    assert tracks["audio_sha256"].nunique() == len(tracks)


def _write(folder: Path, name: str, samples: np.ndarray, **kwargs) -> None:
    soundfile.write(folder / name, samples, RATE, **kwargs)


@pytest.mark.parametrize(
    ("case", "rule"),
    [
        ("corrupt", "audio.readable"),
        ("zero_length", "audio.readable"),
        ("too_short", "audio.readable"),
        ("nan_samples", "audio.decode"),
        ("escaping_path", "recordings.path_inside"),
        ("duplicate_id", "track_id.unique"),
    ],
)
def test_bad_audio_names_track_and_file_and_nothing_is_published(
    audio_project: ScratchProject, case: str, rule: str
) -> None:
    recordings = write_recordings(audio_project, groups=2)
    folder = audio_project.data / "01_raw" / "audio"
    bad = "trk11"
    if case == "corrupt":
        (folder / "trk11.flac").write_bytes(b"fLaC" + bytes(range(256)) * 8)
    elif case == "zero_length":
        _write(folder, "trk11.flac", np.zeros(0, dtype=np.float32))
    elif case == "too_short":
        _write(folder, "trk11.flac", note_train(0.3, 120))
    elif case == "nan_samples":
        samples = note_train(3.0, 120)
        samples[RATE] = np.nan
        _write(folder, "trk11.wav", samples, subtype="FLOAT")
        recordings.loc[recordings["track_id"] == bad, "path"] = "trk11.wav"
    elif case == "escaping_path":
        recordings.loc[recordings["track_id"] == bad, "path"] = "../recordings.csv"
    else:
        recordings.loc[recordings["track_id"] == bad, "track_id"] = "trk10"
        bad = "trk10"
    recordings.to_csv(audio_project.data / "01_raw" / "recordings.csv", index=False)
    with pytest.raises(InputContractError) as refused:
        audio_project.run("audio_features")
    message = str(refused.value)
    assert f"[{rule}]" in message and bad in message
    if case not in {"escaping_path", "duplicate_id"}:
        assert str(folder / "trk11") in message  # the file
    raw = audio_project.data / "01_raw"
    assert not any(
        (raw / name).exists() for name in ("tracks.parquet", "segments", "extraction.json")
    )


def test_audio_features_never_overwrites_data_it_did_not_write(
    audio_project: ScratchProject,
) -> None:
    write_recordings(audio_project, groups=2)
    audio_project.run("synthetic_data")
    before = (audio_project.data / "01_raw" / "tracks.parquet").read_bytes()
    with pytest.raises(RawInputsRefused, match="audio_features stops"):
        audio_project.run("audio_features")
    assert (audio_project.data / "01_raw" / "tracks.parquet").read_bytes() == before
    synthetic = {"tracks.parquet", "segments", "proxy_targets.parquet", "discovery.json"}
    twins = {"twins.parquet", "twin_segments"}
    for path in (audio_project.data / "01_raw").iterdir():
        if path.name in synthetic:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    # The synthetic twins are synthetic_data's too: audio_features will not write beside them.
    with pytest.raises(RawInputsRefused, match=r"twins\.parquet"):
        audio_project.run("audio_features")
    for path in (audio_project.data / "01_raw").iterdir():
        if path.name in twins:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    audio_project.run("audio_features")  # the locations are free again
    audio_project.run("audio_features")  # its own output: rewritten freely
    with pytest.raises(RawInputsRefused, match="synthetic_data stops"):
        audio_project.run("synthetic_data")
