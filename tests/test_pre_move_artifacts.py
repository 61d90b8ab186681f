"""Artifacts saved before the package moved (issue 15) still load and answer the same.

``tests/fixtures/pre_move/`` was written by the code of commit 54893f4 (see its
``make_fixture.py``): a tiny bundle, a tiny untrained oracle and the answers that code gave.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from expressive_retrieval.models import OracleConfig, OracleScorer, ProjectionConfig, ProjectionHead
from expressive_retrieval.serving import load_bundle

FIXTURE = Path(__file__).parent / "fixtures" / "pre_move"
BUNDLE = FIXTURE / "bundle" / "2026-01-01T00.00.00.000Z"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())


def test_a_pre_move_bundle_verifies_and_answers_as_before() -> None:
    retriever = load_bundle(BUNDLE)  # verifies every checksum
    query = np.load(FIXTURE / "query.npy")
    hits = retriever.search_clips(query, k=5, weights={"tempo": 1.0})
    tracks = retriever.search_tracks(query, k=3)
    for got, expected in ((hits, EXPECTED["clip_hits"]), (tracks, EXPECTED["track_hits"])):
        assert [h.id for h in got] == [e[0] for e in expected]
        np.testing.assert_allclose([h.score for h in got], [e[1] for e in expected], atol=1e-6)


def test_pre_move_projection_weights_load_into_the_torch_head() -> None:
    folder = BUNDLE / "projection_retriever"
    config = ProjectionConfig.from_dict(json.loads((folder / "config.json").read_text()))
    head = ProjectionHead.from_state(config, load_file(str(folder / "model.safetensors")))
    query = np.load(FIXTURE / "query.npy")  # clip track_07:0 of the bundle
    row = pd.read_parquet(folder / "clip_ids.parquet")["clip_id"].tolist().index("track_07:0")
    stored = np.load(folder / "clip_vectors.npy")[row]
    np.testing.assert_allclose(head.eval().embed_numpy(query[None])[0], stored, atol=1e-6)


def test_pre_move_oracle_weights_score_as_before() -> None:
    config = OracleConfig.from_dict(json.loads((FIXTURE / "oracle" / "config.json").read_text()))
    state = load_file(str(FIXTURE / "oracle" / "model.safetensors"))
    oracle = OracleScorer.from_state(config, state).eval()
    clips = np.load(FIXTURE / "oracle" / "clips.npy")  # [5, S, L, D]: a query, 4 candidates
    with torch.no_grad():
        totals, per_aspect = oracle.score(clips[0], clips[1:])
    np.testing.assert_allclose(totals, EXPECTED["oracle_totals"], atol=1e-6)
    np.testing.assert_allclose(per_aspect, EXPECTED["oracle_per_aspect"], atol=1e-6)


def test_pre_move_weights_are_refused_when_a_tensor_is_missing() -> None:
    config = OracleConfig.from_dict(json.loads((FIXTURE / "oracle" / "config.json").read_text()))
    state = load_file(str(FIXTURE / "oracle" / "model.safetensors"))
    del state["routing.logits"]
    with pytest.raises(RuntimeError, match=r"routing\.logits"):
        OracleScorer.from_state(config, state)
