"""``oracle_scorer`` end to end: a trained model passes its gate; tied or shuffled heads fail."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from kedro.io import DatasetError

from benchmarks.scratch import ScratchProject, deep_merge
from expressive_retrieval.evaluation.gates import GateFailed
from expressive_retrieval.evaluation.retrieval import split_view
from expressive_retrieval.models import OracleConfig, OracleScorer
from expressive_retrieval.pipelines.oracle_scorer.nodes import gate_verdict, split_report
from tests.conftest import SMALL

# Enough clips per split for stable metrics and a clearer signal than the default world,
# still seconds to train at L=9, D=64.
ORACLE_DATA = deep_merge(
    SMALL,
    {
        "synthetic_data": {
            "num_groups": 40,
            "min_segments": 12,
            "max_segments": 15,
            "num_layers": 9,
            "dim": 64,
            "aspect_scale": 1.0,
            "band_width": 0.7,
            "content_scale": 0.5,
            "channel_scale": 0.5,
        }
    },
)


@pytest.fixture
def trained(projected) -> ScratchProject:
    """The shared project: its oracle is trained on ``ORACLE_DATA`` exactly as here (only
    ``fail_on_gate``, which the checks below do not read, and the later pipelines differ).
    """
    return projected


def _load_model(project: ScratchProject) -> OracleScorer:
    config = OracleConfig.from_dict(project.load("oracle_config"))
    return OracleScorer.from_state(config, project.load("oracle_model")).eval()


def test_trained_oracle_passes_its_gate_and_beats_cosine(trained) -> None:
    report = trained.load("oracle_eval_report")
    assert report["gate"]["status"] == "passed", report["gate"]["detail"]
    assert list(report["splits"]) == ["val"]  # the test split is evaluation's alone
    val = report["splits"]["val"]
    for task in ("clip_to_clip", "clip_to_track"):
        assert val["systems"]["oracle"][task]["ndcg@10"] > val["systems"]["cosine"][task]["ndcg@10"]
    assert set(val["aspect_faithfulness"]["matrix"]) == {
        "tempo",
        "dynamics",
        "articulation",
        "phrasing",
        "timbre",
    }
    # The gate decided on the interval of the paired difference, which clears zero.
    for comparison in val["comparisons"]:
        assert (comparison["a"], comparison["b"]) == ("oracle", "cosine")
        assert 0 < comparison["low"] <= comparison["mean_diff"] <= comparison["high"]


def test_artifacts_reload_without_pickle(trained) -> None:
    config = trained.load("oracle_config")
    assert config["num_layers"] == 9 and config["dim"] == 64
    assert config["layer_scores"] and config["default_weights"] == [1.0] * 5
    metadata = trained.load("oracle_training_metadata")
    assert metadata["dataset_version"] == trained.load("dataset_version")["dataset_version"]
    assert metadata["loss_weights"]["aspect"] == 2.0 and metadata["gate"]["status"] == "passed"
    assert metadata["history"][0]["epoch"] == 1 and metadata["wall_time_s"] > 0
    model = _load_model(trained)
    clips = torch.randn(3, 6, 9, 64)
    total, per_aspect = model(clips[:1], clips[None, 1:])
    assert total.shape == (1, 2) and per_aspect.shape == (1, 2, 5)


def test_tampered_weights_are_refused(trained) -> None:
    (version,) = trained.versions("oracle_model")[-1:]
    path = trained.data / "06_models/oracle/model.safetensors" / version / "model.safetensors"
    original = path.read_bytes()
    tampered = bytearray(original)
    tampered[-5] ^= 0xFF
    path.write_bytes(bytes(tampered))
    try:
        with pytest.raises(DatasetError, match="truncated or altered"):
            trained.load("oracle_model")
    finally:
        path.write_bytes(original)


class _TiedHeads(OracleScorer):
    """Every aspect reports the same (mean) similarity: ranking intact, aspects ignored."""

    def score_encoded(self, query_enc: torch.Tensor, cand_enc: torch.Tensor) -> torch.Tensor:
        per_aspect = super().score_encoded(query_enc, cand_enc)
        return per_aspect.mean(-1, keepdim=True).expand_as(per_aspect)


class _ShuffledHeads(OracleScorer):
    """Aspect a's slot reports aspect a+1's head: ranking intact, aspects mislabelled."""

    def score_encoded(self, query_enc: torch.Tensor, cand_enc: torch.Tensor) -> torch.Tensor:
        return super().score_encoded(query_enc, cand_enc).roll(1, dims=-1)


@pytest.mark.parametrize("variant", [_TiedHeads, _ShuffledHeads])
def test_gate_rejects_models_that_ignore_aspects(trained, variant) -> None:
    params = trained.catalog().load("params:oracle_scorer")
    checks = trained.catalog().load("params:checks")
    state, config = trained.load("oracle_model"), trained.load("oracle_config")
    model = variant.from_state(OracleConfig.from_dict(config), state).eval()
    view = split_view(
        trained.load("clips"),
        trained.load("clip_aspect_features"),
        trained.load("dataset_version")["relevance"],
        "val",
        trained.load("splits"),
        checks["uncertainty"]["unit"],
    )
    segments, clips = trained.load("segments"), trained.load("clips")
    honest = split_report(_load_model(trained), segments, clips, view, params, checks)
    broken = split_report(model, segments, clips, view, params, checks)
    # Overall ranking is the same: equal default weights make the total the mean of heads.
    for task in ("clip_to_clip", "clip_to_track"):
        assert broken["systems"]["oracle"][task]["ndcg@10"] == pytest.approx(
            honest["systems"]["oracle"][task]["ndcg@10"], abs=1e-6
        )
    assert gate_verdict(honest, params["gate"], checks["aspects"]).status == "passed"
    verdict = gate_verdict(broken, params["gate"], checks["aspects"])
    assert verdict.status == "failed"
    assert not any(f.startswith("ranking") for f in verdict.failures)
    assert any(f.startswith(("aspect_faithfulness", "counterfactual")) for f in verdict.failures)


def test_gate_on_a_query_sample_scores_only_the_sampled_queries(trained) -> None:
    params = trained.catalog().load("params:oracle_scorer")
    checks = trained.catalog().load("params:checks")
    segments, clips = trained.load("segments"), trained.load("clips")
    args = (
        clips,
        trained.load("clip_aspect_features"),
        trained.load("dataset_version")["relevance"],
        "val",
        trained.load("splits"),
        checks["uncertainty"]["unit"],
    )
    full = split_view(*args)
    limit = len(full.clip_ids) // 3
    sampled = split_view(*args, queries={"max": limit, "seed": 11})
    report = split_report(_load_model(trained), segments, clips, sampled, params, checks)
    assert report["num_queries"] == limit < report["num_clips"] == len(full.clip_ids)
    assert report["num_units"] == full.resampler(checks["uncertainty"]).num_clusters
    # A third of the queries: the oracle still ranks above cosine on both tasks (the gate's
    # margin on the lower bound needs the whole split's power in this small world).
    for comparison in report["comparisons"].values():
        assert comparison[("oracle", "cosine")]["mean_diff"] > 0


def test_failed_gate_stops_the_run_and_keeps_the_report(make_project) -> None:
    project = make_project(
        {"oracle_scorer": {"training": {"epochs": 1}, "gate": {"min_ndcg_gain_vs_cosine": 100.0}}}
    )
    project.run("synthetic_data", "labels_and_splits")
    with pytest.raises(GateFailed, match="ranking: clip_to_clip nDCG@10 oracle - cosine"):
        project.run("oracle_scorer")
    assert project.versions("oracle_model") == []
    report = project.load("oracle_eval_report")
    assert report["gate"]["status"] == "failed"
    json.dumps(report)  # plain JSON
    assert np.isfinite(report["splits"]["val"]["systems"]["oracle"]["clip_to_clip"]["mrr"])


def test_the_cosine_branch_is_trained_saved_and_reloaded_from_conf(make_project) -> None:
    project = make_project(
        {
            "oracle_scorer": {
                "model": {"cosine_branch": True},
                "training": {"epochs": 2},
                "gate": {"fail_on_gate": False},
            }
        }
    )
    project.run("synthetic_data", "labels_and_splits", "oracle_scorer")
    config = project.load("oracle_config")
    assert config["cosine_branch"] is True
    history = project.load("oracle_training_metadata")["history"]
    assert [np.isfinite(h["loss_cosine_ranking"]) for h in history] == [True, True]
    model = _load_model(project)
    assert model.cosine_scale.shape == (len(config["aspects"]),)
    shape = (config["clip_segments"], config["num_layers"], config["dim"])
    _, per_aspect = model(torch.randn(1, *shape), torch.randn(1, 4, *shape))
    assert per_aspect.shape == (1, 4, len(config["aspects"]))
    assert project.load("oracle_eval_report")["splits"]["val"]["systems"]["oracle"]
