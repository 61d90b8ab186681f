"""The corpus-parallel steps on Dask: the same bytes as in process, failures naming the
shard and the track, and re-runs that resume from the finished shards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from benchmarks.random_models import uniform_config
from benchmarks.scratch import ScratchProject
from expressive_retrieval.data.contract import InputContractError
from expressive_retrieval.data.segments import SegmentStore
from expressive_retrieval.datasets import VectorsDataset
from expressive_retrieval.models import ProjectionConfig, ProjectionHead
from expressive_retrieval.pipelines.audio_features.nodes import extract_audio_features
from expressive_retrieval.pipelines.projection_retriever.nodes import project_corpus
from expressive_retrieval.scale import ShardsFailed
from tests.audio.signals import RATE, note_train
from tests.pipelines.test_audio_features import _project, write_recordings

L, D, CLIP = 3, 16, 4
DASK = {"backend": "dask", "workers": 2, "processes": False, "shard_tracks": 3}
INPROCESS = {"backend": "inprocess", "shard_tracks": 3}


def _corpus(root: Path, num_tracks: int = 10) -> tuple[SegmentStore, pd.DataFrame]:
    rng = np.random.default_rng(1)
    (root / "segments").mkdir(parents=True)
    rows = []
    for t in range(num_tracks):
        track_id = f"t{t:02d}"
        segments = rng.standard_normal((8 + t % 3, L, D)).astype(np.float16)
        np.save(root / "segments" / f"{track_id}.npy", segments)
        rows += [(f"{track_id}:{s}", track_id, s, s + CLIP, "test") for s in range(0, 5, 2)]
    columns = ["clip_id", "track_id", "segment_start", "segment_end", "split"]
    return SegmentStore(root / "segments"), pd.DataFrame(rows, columns=columns)


def _head() -> tuple[dict, dict]:
    config = uniform_config(ProjectionConfig, L, D, ["tempo", "dynamics"], CLIP)
    return ProjectionHead(config, seed=3).state_dict(), config.to_dict()


def _project_vectors(
    store: SegmentStore, clips: pd.DataFrame, scale: dict[str, Any], out: Path
) -> np.ndarray:
    state, config = _head()
    params = {"corpus": {"chunk_size": 4}}
    blocks, ids = project_corpus(state, config, store, clips, params, scale)
    assert ids["clip_id"].tolist() == clips["clip_id"].tolist()
    VectorsDataset(str(out)).save(blocks)
    return np.load(out)


def test_project_corpus_on_dask_is_byte_identical(tmp_path: Path) -> None:
    store, clips = _corpus(tmp_path)
    local = _project_vectors(
        store, clips, {**INPROCESS, "staging": str(tmp_path / "a")}, tmp_path / "a.npy"
    )
    on_dask = _project_vectors(
        store, clips, {**DASK, "staging": str(tmp_path / "b")}, tmp_path / "b.npy"
    )
    assert local.shape == (30, 2 * 16) and local.tobytes() == on_dask.tobytes()


def test_an_existing_cluster_is_used_through_its_address(tmp_path: Path) -> None:
    from distributed import LocalCluster

    store, clips = _corpus(tmp_path, num_tracks=4)
    local = _project_vectors(
        store, clips, {**INPROCESS, "staging": str(tmp_path / "a")}, tmp_path / "a.npy"
    )
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        scale = {"shard_tracks": 3, "scheduler_address": cluster.scheduler_address}
        remote = _project_vectors(
            store, clips, {**scale, "staging": str(tmp_path / "b")}, tmp_path / "b.npy"
        )
        assert cluster.scheduler.status.name == "running"  # left running for the next step
    assert local.tobytes() == remote.tobytes()


def test_worker_processes_read_files_and_match(tmp_path: Path) -> None:
    """Real worker processes: the task and its inputs travel by name and path."""
    store, clips = _corpus(tmp_path, num_tracks=4)
    local = _project_vectors(
        store, clips, {**INPROCESS, "staging": str(tmp_path / "a")}, tmp_path / "a.npy"
    )
    scale = {**DASK, "workers": 1, "processes": True, "staging": str(tmp_path / "b")}
    workers = _project_vectors(store, clips, scale, tmp_path / "b.npy")
    assert local.tobytes() == workers.tobytes()


def test_a_bad_track_is_named_and_the_fixed_run_resumes(tmp_path: Path) -> None:
    store, clips = _corpus(tmp_path)
    expected = _project_vectors(
        store, clips, {**INPROCESS, "staging": str(tmp_path / "a")}, tmp_path / "a.npy"
    )
    bad = store.path("t04")
    good = bad.read_bytes()
    bad.write_bytes(b"\x93NUMPY not an array")  # shard 1 holds t02..t05 (cut at chunks of 4 clips)
    scale = {**DASK, "staging": str(tmp_path / "b")}
    with pytest.raises(ShardsFailed) as failed:
        _project_vectors(store, clips, scale, tmp_path / "b.npy")
    message = str(failed.value)
    assert "project_corpus: 1 of 4 shards failed" in message
    assert "shard 1 (rows 8:16, tracks t02..t05), track t04: ValueError: " in message
    staging = next((tmp_path / "b" / "project_corpus").iterdir())
    finished = {p.name: p.stat().st_mtime_ns for p in staging.glob("part-*.npy")}
    assert sorted(finished) == ["part-00000.npy", "part-00002.npy", "part-00003.npy"]
    bad.write_bytes(good)
    resumed = _project_vectors(store, clips, scale, tmp_path / "b.npy")
    assert {name: (staging / name).stat().st_mtime_ns for name in finished} == finished
    assert (staging / "part-00001.npy").exists()
    assert resumed.tobytes() == expected.tobytes()


def _extract(project: ScratchProject, recordings: pd.DataFrame, scale: dict, name: str) -> tuple:
    params = project.catalog().load("params:audio_features")
    params = {**params, "files": {**params["files"], "cache": str(project.root / name)}}
    return extract_audio_features(
        recordings, params, {**scale, "staging": str(project.root / f"s{name}")}
    )


def test_audio_features_on_dask_is_identical(tmp_path: Path, tiny_model: Path) -> None:
    project = _project(tmp_path, tiny_model)
    recordings = write_recordings(project, groups=2, seconds=3.2)
    tracks, segments, proxies, discovery, extraction = _extract(project, recordings, INPROCESS, "a")
    d_tracks, d_segments, d_proxies, d_discovery, d_extraction = _extract(
        project, recordings, {**DASK, "shard_tracks": 1}, "b"
    )
    pd.testing.assert_frame_equal(tracks, d_tracks)
    pd.testing.assert_frame_equal(proxies, d_proxies)
    assert (discovery, extraction) == (d_discovery, d_extraction)
    assert list(segments) == list(d_segments) == recordings["track_id"].tolist()
    for track_id in segments:
        assert segments[track_id]().tobytes() == d_segments[track_id]().tobytes()


def test_bad_audio_on_a_worker_names_the_shard_and_the_track(
    tmp_path: Path, tiny_model: Path
) -> None:
    project = _project(tmp_path, tiny_model)
    recordings = write_recordings(project, groups=2, seconds=3.2)
    samples = note_train(3.0, 120)
    samples[RATE] = np.nan
    audio = project.data / "01_raw" / "audio"
    import soundfile

    soundfile.write(audio / "trk11.wav", samples, RATE, subtype="FLOAT")
    recordings.loc[recordings["track_id"] == "trk11", "path"] = "trk11.wav"
    with pytest.raises(InputContractError) as refused:
        _extract(project, recordings, {**DASK, "shard_tracks": 2}, "a")
    message = str(refused.value)
    assert f"{audio / 'trk11.wav'} [audio.decode]" in message
    assert "shard 1 (rows 2:4, tracks trk10..trk11)" in message and "trk11" in message
