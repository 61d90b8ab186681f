"""The synthetic world is what it claims: cosine fails, the planted latents succeed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from expressive_retrieval.data.relevance import (
    RelevanceModel,
    clip_features,
    fill_missing_proxies,
)
from expressive_retrieval.data.synthetic import SIGNAL_PREFIX, SyntheticConfig, generate_catalogue
from expressive_retrieval.evaluation.metrics import ranking_metrics
from expressive_retrieval.hooks import RawInputsRefused, foreign_inputs

REPO = Path(__file__).resolve().parents[2]
ASPECTS = yaml.safe_load((REPO / "conf/base/parameters.yml").read_text())["aspects"]
LABELS = yaml.safe_load((REPO / "conf/base/parameters_labels_and_splits.yml").read_text())[
    "labels_and_splits"
]


def _clips(num_segments: pd.Series, length: int = 6, hop: int = 3) -> pd.DataFrame:
    rows = [
        (f"{t}:{s}", t, s, s + length)
        for t, n in num_segments.items()
        for s in range(0, n - length + 1, hop)
    ]
    return pd.DataFrame(rows, columns=["clip_id", "track_id", "segment_start", "segment_end"])


def _ndcg_at_10(scores: np.ndarray, grades: np.ndarray, tracks: np.ndarray) -> float:
    valid = tracks[:, None] != tracks[None, :]
    ids = [str(i) for i in range(len(tracks))]
    return ranking_metrics(scores, grades, ids, valid)["ndcg@10"]


@pytest.fixture(scope="module")
def world() -> dict:
    config = SyntheticConfig(num_groups=16, dim=256, seed=3)
    catalogue = generate_catalogue(config, ASPECTS)
    clips = _clips(catalogue.proxy_targets.groupby("track_id").size())
    proxies = [p for spec in ASPECTS.values() for p in spec["proxies"]]
    features = clip_features(fill_missing_proxies(catalogue.proxy_targets, proxies), clips, ASPECTS)
    relevance = RelevanceModel.fit(
        features, ASPECTS, LABELS["relevance"]["bandwidth"], LABELS["relevance"]["thresholds"]
    )
    z = relevance.standardize(features)
    grades = relevance.grades(relevance.targets(z, z))
    return {"catalogue": catalogue, "clips": clips, "grades": grades, "config": config}


def test_mean_pooled_cosine_scores_low(world: dict) -> None:
    catalogue, clips = world["catalogue"], world["clips"]
    arrays = {t: make().astype(np.float32) for t, make in catalogue.segments.items()}
    pooled = np.stack(
        [
            arrays[c.track_id][c.segment_start : c.segment_end].mean(axis=(0, 1))
            for c in clips.itertuples()
        ]
    )
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    tracks = clips["track_id"].to_numpy()
    ndcg = _ndcg_at_10(pooled @ pooled.T, world["grades"], tracks)
    assert ndcg < 0.25
    # Nuisance dominates: cosine's nearest clips are mostly the same work.
    works = catalogue.tracks.set_index("track_id")["work_id"].reindex(tracks).to_numpy()
    scores = np.where(tracks[:, None] != tracks[None, :], pooled @ pooled.T, -np.inf)
    top = np.argsort(-scores, axis=1)[:, :5]
    assert (works[top] == works[:, None]).mean() > 0.5


def test_planted_latents_score_high(world: dict) -> None:
    catalogue, clips = world["catalogue"], world["clips"]
    signals = catalogue.latents.rename(columns=lambda c: c.removeprefix(SIGNAL_PREFIX))
    latent_aspects = {a: {**spec, "proxies": [a]} for a, spec in ASPECTS.items()}
    latent = clip_features(fill_missing_proxies(signals, list(ASPECTS)), clips, latent_aspects)
    model = RelevanceModel.fit(latent, latent_aspects, 0.5, [0.5])
    z = model.standardize(latent)
    ndcg = _ndcg_at_10(
        model.combined(model.targets(z, z)), world["grades"], clips["track_id"].to_numpy()
    )
    assert ndcg > 0.75


def test_catalogue_shape_and_missing_values(world: dict) -> None:
    catalogue, config = world["catalogue"], world["config"]
    track = catalogue.tracks.iloc[0]
    array = catalogue.segments[track.track_id]()
    assert array.dtype == np.float16
    assert array.shape == (track.duration_s / config.segment_seconds, config.num_layers, config.dim)
    missing = catalogue.proxy_targets["tempo_bpm"].isna().mean()
    assert 0.01 < missing < 0.1
    # Every aspect's evidence peaks in its own band of layers, in order.
    peaks = [np.argmax(v["layer_scores"]) for v in catalogue.discovery["aspects"].values()]
    assert peaks == sorted(peaks) and len(set(peaks)) == len(peaks)


def test_same_seed_same_catalogue() -> None:
    config = SyntheticConfig(num_groups=2, dim=16, num_layers=4)
    a, b = generate_catalogue(config, ASPECTS), generate_catalogue(config, ASPECTS)
    pd.testing.assert_frame_equal(a.proxy_targets, b.proxy_targets)
    track = a.tracks["track_id"].iloc[-1]
    np.testing.assert_array_equal(a.segments[track](), b.segments[track]())


def test_twins_move_one_aspect_and_leave_the_catalogue_alone() -> None:
    config = SyntheticConfig(num_groups=2, dim=32)
    plain = generate_catalogue(config, ASPECTS)
    twinned = generate_catalogue(replace(config, twin_sources_per_group=2), ASPECTS)
    # The catalogue is the same with or without twins: labels and splits cannot see them.
    for name in ("tracks", "proxy_targets", "latents"):
        pd.testing.assert_frame_equal(getattr(plain, name), getattr(twinned, name))
    assert plain.discovery == twinned.discovery and plain.twins.empty
    for track, make in plain.segments.items():
        np.testing.assert_array_equal(make(), twinned.segments[track]())
    twins = twinned.twins
    assert len(twins) == 2 * 2 * len(ASPECTS)  # groups x sources per group x aspects
    assert set(twins["twin_id"]) == set(twinned.twin_segments)
    assert set(twins["twin_id"]).isdisjoint(twinned.tracks["track_id"])
    assert (twins["delta"] == config.twin_delta).all()
    # A twin differs from its source in its own aspect's band of layers, and only there.
    centres = np.linspace(0, config.num_layers - 1, len(ASPECTS) + 2)[1:-1]
    for row in twins.itertuples():
        source = twinned.segments[row.source_track_id]().astype(np.float32)
        change = np.abs(twinned.twin_segments[row.twin_id]().astype(np.float32) - source)
        per_layer = change.mean(axis=(0, 2))
        centre = centres[list(ASPECTS).index(row.aspect)]
        assert abs(np.argmax(per_layer) - centre) <= 0.5, (row.twin_id, per_layer)
        far = np.abs(np.arange(config.num_layers) - centre) >= 4
        assert per_layer[far].max() < 0.05 * per_layer.max(), (row.twin_id, per_layer)


def test_synthetic_data_refuses_to_overwrite_user_data(make_project) -> None:
    project = make_project()
    project.run("synthetic_data")
    raw = project.data / "01_raw"
    files = {
        k: str(raw / v)
        for k, v in {
            "tracks": "tracks.parquet",
            "segments": "segments",
            "proxy_targets": "proxy_targets.parquet",
            "discovery": "discovery.json",
        }.items()
    }
    assert foreign_inputs(files) == []
    project.run("synthetic_data")  # its own output: regenerated freely

    tracks = pd.read_parquet(raw / "tracks.parquet")
    tracks.loc[0, "duration_s"] += 1.0  # the user edits the data
    tracks.to_parquet(raw / "tracks.parquet")
    before = (raw / "tracks.parquet").read_bytes()
    with pytest.raises(RawInputsRefused, match="pipeline=training"):
        project.run("synthetic_data")
    assert (raw / "tracks.parquet").read_bytes() == before
