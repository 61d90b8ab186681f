"""Audit statistics: Krippendorff's alpha, pairwise preference accuracy, sampling, pooling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from expressive_retrieval.evaluation.audit.kit import (
    kit_table,
    krippendorff_alpha_interval,
    pairwise_preference_accuracy,
    parse_judgements,
    pool_candidates,
    stratified_sample,
)
from expressive_retrieval.evaluation.audit.page import audit_page

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the 4 observers x
# 12 units example with missing values; interval alpha = 0.849.
RELIABILITY = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
}


def _ratings(table: dict[str, list]) -> pd.DataFrame:
    rows = [
        {"item": unit, "rater": rater, "value": value}
        for rater, values in table.items()
        for unit, value in enumerate(values)
        if value is not None
    ]
    return pd.DataFrame(rows)


def test_krippendorff_alpha_matches_the_published_example() -> None:
    assert krippendorff_alpha_interval(_ratings(RELIABILITY)) == pytest.approx(0.849, abs=5e-4)


def test_krippendorff_alpha_extremes() -> None:
    perfect = {"A": [0, 1, 2, 3, 3], "B": [0, 1, 2, 3, 3]}
    assert krippendorff_alpha_interval(_ratings(perfect)) == pytest.approx(1.0)
    assert krippendorff_alpha_interval(_ratings({"A": [1, 2, 3]})) is None  # nothing pairable
    rng = np.random.default_rng(0)
    noise = {r: rng.integers(0, 4, 400).tolist() for r in "ABC"}
    assert abs(krippendorff_alpha_interval(_ratings(noise))) < 0.1


def test_pairwise_preference_accuracy_counts_ties_as_half() -> None:
    consensus = pd.DataFrame(
        {"query": [0, 0, 0, 1, 1], "candidate": [1, 2, 3, 0, 2], "grade": [3, 1, 0, 2, 2]}
    )
    scores = np.array([[0, 0.9, 0.5, 0.5], [0.1, 0, 0.7, 0]])
    accuracy, pairs = pairwise_preference_accuracy(consensus, lambda q, c: scores[q, c])
    # Query 0: (1,2) right, (1,3) right, (2,3) tie -> 2.5 of 3; query 1: equal grades, no pair.
    assert pairs == 3 and accuracy == pytest.approx(2.5 / 3)
    reverse, _ = pairwise_preference_accuracy(consensus, lambda q, c: -scores[q, c])
    assert reverse == pytest.approx(0.5 / 3)
    empty = consensus[consensus["query"] == 1]
    assert pairwise_preference_accuracy(empty, lambda q, c: scores[q, c]) == (None, 0)


def test_stratified_sample_visits_every_stratum_first() -> None:
    strata = pd.Series(["a"] * 10 + ["b"] * 3 + ["c"] * 1)
    chosen = stratified_sample(strata, 6, seed=0)
    assert len(set(chosen)) == 6
    assert set(strata[chosen[:3]]) == {"a", "b", "c"}
    assert (stratified_sample(strata, 6, seed=0) == chosen).all()
    assert len(stratified_sample(strata, 100, seed=0)) == len(strata)


def test_pool_and_kit_blind_the_systems() -> None:
    rankings = {"x": np.array([[1, 2, 3], [0, 2, -1]]), "y": np.array([[3, 1, 2], [2, 3, 0]])}
    pool = pool_candidates(rankings, np.array([0, 1]), depth=2)
    as_set = {(q, c): (x, y) for q, c, x, y in pool.itertuples(index=False)}
    assert as_set == {
        (0, 1): (1, 2),
        (0, 2): (2, 0),
        (0, 3): (0, 1),
        (1, 0): (1, 0),
        (1, 2): (2, 1),
        (1, 3): (0, 2),
    }
    ids = ["c0", "c1", "c2", "c3"]
    kit = kit_table(pool, ids, ids, seed=3, kit_id="k1")
    assert len(kit) == len(pool) and kit["item_id"].is_unique
    assert not any(c.startswith("rank_") for c in kit.columns)
    assert set(zip(kit["query"], kit["candidate"], strict=True)) == set(as_set)


def test_parse_judgements_keeps_valid_grades_and_names_raters() -> None:
    files = {
        "ana.csv": "query_clip_id,candidate_clip_id,grade\nq,a,3\nq,b,\nq,c,7\nq,a,2\n",
        "kit.csv": "kit_id,rater,item_id,query_clip_id,candidate_clip_id,grade\nk,ben,i1,q,a,1\n",
        "broken.csv": "nothing,useful\n1,2\n",
        "notes.txt": "ignored",
    }
    judgements, notes = parse_judgements(files)
    assert sorted(judgements["rater"]) == ["ana", "ben"]
    assert judgements.set_index("rater").loc["ana", "grade"] == 2  # the later grade wins
    assert len(notes) == 1 and notes[0].startswith("broken.csv")
    assert parse_judgements({})[0].empty


def test_rater_page_embeds_audio_players_when_tracks_have_audio() -> None:
    row = {
        "kit_id": "k1",
        "query_number": 1,
        "query_clip_id": "t1:0",
        "query_start_s": 0.0,
        "query_end_s": 30.0,
        "candidate_start_s": 15.0,
        "candidate_end_s": 45.0,
    }
    kit = pd.DataFrame(
        [
            row
            | {
                "item_id": "q001-c01",
                "candidate_clip_id": "t2:3",
                "query_audio_uri": "a/t1.mp3",
                "candidate_audio_uri": "a/t2.mp3",
            },
            row
            | {
                "item_id": "q001-c02",
                "candidate_clip_id": "t3:3",
                "query_audio_uri": "a/t1.mp3",
                "candidate_audio_uri": "",
            },
        ]
    )
    page = audit_page(kit)
    assert '"audio_uri": "a/t2.mp3"' in page and '"audio_uri": ""' in page
    assert 'audio.src = uri + "#t=" + start + "," + end' in page  # the clip's window only
    assert "q001-c01" in page and "q001-c02" in page and "</script>" in page
    assert "<\\/" not in page.split("<script>")[0]
