"""``evaluation`` end to end on the shared trained project: report, TREC files, gates, audit."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import pytrec_eval

from benchmarks.scratch import ScratchProject
from expressive_retrieval.evaluation.audit.kit import parse_judgements
from expressive_retrieval.evaluation.gates import GateFailed
from expressive_retrieval.evaluation.metrics import (
    format_qrels,
    format_run,
    parse_qrels,
    parse_run,
    task_metrics,
)
from expressive_retrieval.evaluation.retrieval import (
    TASKS,
    SystemScores,
    per_query_report,
    scores_from_aspects,
)
from expressive_retrieval.pipelines.evaluation.nodes import (
    SYSTEMS,
    evaluation_view,
    export_trec,
    measure_systems,
)
from expressive_retrieval.pipelines.evaluation.reporting import GATES, enforce_gates, gate_verdicts
from expressive_retrieval.pipelines.evaluation.scoring import (
    pool_view,
    score_frozen_baselines,
    score_oracle,
    score_projections,
    score_systems,
)

TREC_MEASURES = {
    "recall_1": "recall@1",
    "recall_5": "recall@5",
    "recall_10": "recall@10",
    "recall_50": "recall@50",
    "recip_rank": "mrr",
    "ndcg_cut_10": "ndcg@10",
}
# The small world is not the default catalogue: gates are exercised one by one below.
LENIENT = {"evaluation": {"gates": {"fail_on_gate": False}}}
NO_TWINS = {"twins": None, "detail": "no twins", "systems": {}}


@contextlib.contextmanager
def overridden(project: ScratchProject, params: dict) -> Iterator[None]:
    """Parameters overridden for the duration of a block, then restored."""
    path = project.conf / "local" / "parameters.yml"
    before = path.read_text()
    project.set_params(params)
    try:
        yield
    finally:
        path.write_text(before)


@pytest.fixture(scope="module")
def evaluated(projected: ScratchProject) -> ScratchProject:
    with overridden(projected, LENIENT):
        projected.run("evaluation")
    return projected


def _score(project: ScratchProject, params: dict) -> dict:
    """The evaluation's intermediate scores under ``params``, recomputed by its nodes."""
    load = project.catalog().load
    clips, segments, checks = load("clips"), load("segments"), load("params:checks")
    split = evaluation_view(
        clips, load("clip_aspect_features"), load("dataset_version"), load("splits"), params, checks
    )
    frozen = score_frozen_baselines(segments, clips, load("layer_evidence"), split, params)
    projection = score_projections(
        load("projection_config"),
        load("clip_vectors"),
        load("clip_ids"),
        load("projection_ablation_model"),
        load("projection_ablation_config"),
        load("clip_index"),
        segments,
        clips,
        split,
        params,
        load("params:projection_retriever")["index"],
    )
    view = pool_view(split, frozen, projection, params, checks)
    return {
        "evaluation_view": view,
        "params": params,
        "checks": checks,
        "system_scores": score_systems(view, frozen, projection, checks),
        "oracle_system_scores": score_oracle(
            load("oracle_model"), load("oracle_config"), segments, clips, view, params
        ),
    }


@pytest.fixture(scope="module")
def scored(evaluated: ScratchProject) -> dict:
    """The evaluation's intermediate scores, recomputed in memory by its nodes."""
    return _score(evaluated, evaluated.catalog().load("params:evaluation"))


def test_report_follows_the_design_schema(evaluated) -> None:
    report = evaluated.load("evaluation_report")
    json.dumps(report)
    assert report["dataset_version"] == evaluated.load("dataset_version")["dataset_version"]
    assert report["bundle_version"] is None
    assert set(report["tasks"]) == set(TASKS)
    for block in report["tasks"].values():
        assert block["num_queries"] > 0 and block["num_queries_without_relevant"] >= 0
        assert list(block["systems"]) == list(SYSTEMS)
        assert block["judging"]["path"] == "exhaustive"  # the small split: every pair
        queries = block["queries"]  # and every clip queries (below queries.max)
        assert queries["path"] == "all" and queries["num_queries"] == queries["of_clips"]
        assert queries["num_queries"] == (
            block["num_queries"] + block["num_queries_without_relevant"]
        )
        # Recall@K only for K at most half the fewest candidates a query ranks.
        assert all(0 < k <= block["num_candidates"] // 2 for k in block["recall_ks"])
        for values in block["systems"].values():
            assert set(values) == set(task_metrics(tuple(block["recall_ks"])))
            assert all(0.0 <= v <= 1.0 for v in values.values())
    # Every figure has its 95% interval, which holds the mean.
    for task, block in report["tasks"].items():
        for system, values in block["systems"].items():
            bounds = report["intervals"][task][system]
            assert set(bounds) == set(values)
            for metric, value in values.items():
                assert bounds[metric]["low"] - 1e-9 <= value <= bounds[metric]["high"] + 1e-9
    assert report["uncertainty"]["num_units"] >= 2 and report["uncertainty"]["resamples"] >= 1000
    for task in TASKS:
        pairs = {(c["a"], c["b"]) for c in report["comparisons"][task]}
        assert {("projection_distilled", "cosine"), ("oracle", "projection_distilled")} <= pairs
        assert {("projection_distilled_ivfpq", "projection_distilled")} <= pairs
        for c in report["comparisons"][task]:
            assert c["metric"] == "ndcg@10" and c["low"] <= c["mean_diff"] <= c["high"]
            assert 0 < c["p_value"] <= c["p_holm"] <= 1 and isinstance(c["real"], bool)
    assert len(report["findings"]) == sum(len(c) for c in report["comparisons"].values())
    with_aspects = {"discovery_cosine", "oracle", "projection", "projection_distilled"}
    assert set(report["aspect_faithfulness"]) == with_aspects
    assert set(report["counterfactual"]) == with_aspects
    for system in with_aspects:
        matrix = report["aspect_faithfulness"][system]["matrix"]
        assert set(matrix) == {"tempo", "dynamics", "articulation", "phrasing", "timbre"}
        assert isinstance(report["aspect_faithfulness"][system]["passed"], bool)
        counterfactual = report["counterfactual"][system]
        assert isinstance(counterfactual.pop("passed"), bool)
        assert all(0 <= v["share_moved_as_expected"] <= 1 for v in counterfactual.values())
        assert all(
            v["effect"]["low"] <= v["effect"]["mean"] <= v["effect"]["high"]
            for v in counterfactual.values()
        )
        curves = report["counterfactual_curves"][system]
        assert all(
            len(c) == len(report["counterfactual_curves"]["boosts"]) for c in curves.values()
        )
    assert set(report["gates"]) == set(GATES)
    statuses = {"passed", "failed", "pending", "not_applicable"}
    assert {g["status"] for g in report["gates"].values()} <= statuses
    assert report["gates"]["human_audit"]["status"] == "pending"
    assert set(report["training_curves"]) == {"oracle", "projection", "projection_distilled"}
    assert report["training_curves"]["oracle"]["epochs"][0] == 1
    # Learned systems beat the frozen baselines even on the small world.
    for task in TASKS:
        systems = report["tasks"][task]["systems"]
        for learned in ("oracle", "projection_distilled"):
            assert systems[learned]["ndcg@10"] > systems["cosine"]["ndcg@10"]
        # A Flat index is exact: the ANN system ranks as exact search does.
        assert systems["projection_distilled_ann"] == pytest.approx(systems["projection_distilled"])
        # Chance level sits below every learned system.
        assert systems["random"]["ndcg@10"] < systems["projection_distilled"]["ndcg@10"]


def test_runs_and_qrels_agree_with_pytrec_eval(evaluated) -> None:
    runs, qrels = evaluated.load("evaluation_runs"), evaluated.load("evaluation_qrels")
    assert set(runs) == {f"{t}/{s}.trec" for t in TASKS for s in SYSTEMS}
    assert set(qrels) == {f"{t}.qrels" for t in TASKS}
    report = evaluated.load("evaluation_report")
    per_query = evaluated.load("evaluation_per_query").set_index(["task", "system"])
    for task in TASKS:
        judged = parse_qrels(qrels[f"{task}.qrels"].splitlines())
        evaluator = pytrec_eval.RelevanceEvaluator(judged, set(TREC_MEASURES))
        assert len(judged) == report["tasks"][task]["num_queries"]
        for system in SYSTEMS:
            lines = runs[f"{task}/{system}.trec"].splitlines()
            assert all(line.split()[5] == system for line in lines)
            assert max(pd.Series([line.split()[0] for line in lines]).value_counts()) <= 100
            results = evaluator.evaluate(parse_run(lines))
            ours = per_query.loc[(task, system)].set_index("query_clip_id")
            reported = report["tasks"][task]["systems"][system]
            for measure, name in TREC_MEASURES.items():
                if name not in reported:
                    continue
                mine = ours[name].dropna()
                # A judged query the run returns nothing for scores 0 (trec_eval -c).
                theirs = pd.Series({q: r[measure] for q, r in results.items()})
                assert set(theirs.index) <= set(mine.index)
                theirs = theirs.reindex(mine.index, fill_value=0.0)
                np.testing.assert_allclose(mine, theirs, atol=1e-6)
                assert reported[name] == pytest.approx(theirs.mean(), abs=1e-6)


def test_tied_scores_and_omitted_candidates_match_pytrec_eval(scored) -> None:
    """Coarse scores (many ties) and a run that omits candidates, as an ANN run may."""
    view = scored["evaluation_view"]
    cosine = scored["system_scores"]["cosine"]
    rng = np.random.default_rng(0)
    tied = np.round(cosine.clip, 1)
    retrieved = rng.random(tied.shape) < 0.7
    ids = list(view.clip_ids)
    frame = per_query_report(view, tied, cosine.track, retrieved=retrieved)["clip_to_clip"]
    run = parse_run(
        format_run(ids, tied, ids, view.valid, "tied", retrieved=retrieved).splitlines()
    )
    qrels = parse_qrels(format_qrels(ids, view.grades, ids, view.valid).splitlines())
    results = pytrec_eval.RelevanceEvaluator(qrels, set(TREC_MEASURES)).evaluate(run)
    frame.index = view.clip_ids
    for measure, name in TREC_MEASURES.items():
        if name not in frame:  # a cut-off past half the candidates is not reported
            continue
        theirs = pd.Series({q: r[measure] for q, r in results.items()})
        np.testing.assert_allclose(frame.loc[theirs.index, name], theirs, atol=1e-6)


def test_selectivity_is_measured_on_the_test_split_twins_that_no_label_holds(evaluated) -> None:
    twins, clips, splits = (evaluated.load(n) for n in ("twins", "clips", "splits"))
    twin_ids = set(twins["twin_id"])
    assert twin_ids and twin_ids.isdisjoint(splits["track_id"])
    assert twin_ids.isdisjoint(clips["track_id"])
    pairs = evaluated.load("pairs")
    tracks = clips.set_index("clip_id")["track_id"]
    labelled = set(tracks[pairs["query_clip_id"]]) | set(tracks[pairs["candidate_clip_id"]])
    assert labelled.isdisjoint(twin_ids)
    report = evaluated.load("evaluation_report")
    block = report["aspect_selectivity"]
    test_tracks = set(splits.loc[splits["split"] == "test", "track_id"])
    sources = set(twins["source_track_id"]) & test_tracks
    assert block["twins"]["source_tracks"] == len(sources) > 0
    assert block["twins"]["twin_clips"] == 5 * block["twins"]["source_clips"]
    assert set(block["systems"]) == {"oracle", "projection_distilled", "projection"}
    aspects = ["tempo", "dynamics", "articulation", "phrasing", "timbre"]
    for verdict in block["systems"].values():
        assert list(verdict["matrix"]) == aspects and list(verdict["per_aspect"]) == aspects
        assert all(v >= 0 for row in verdict["matrix"].values() for v in row.values())
        for aspect, v in verdict["per_aspect"].items():
            assert v["own"] == pytest.approx(verdict["matrix"][aspect][aspect])
            assert v["passed"] == (v["ratio_low"] >= 3.0)
    # A learned sub-score moves most on its own aspect's twins, even on the small world.
    oracle = block["systems"]["oracle"]["per_aspect"]
    assert sum(v["ratio"] > 1 for v in oracle.values()) >= 4
    assert report["gates"]["aspect_selectivity"]["status"] in {"passed", "failed"}


def _flat(tree: dict | list | float, path: str = "") -> dict[str, float]:
    """A nested report block as ``{path: number}``."""
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _flat(sub, f"{path}/{key}").items()}
    if isinstance(tree, list):
        return {k: v for i, sub in enumerate(tree) for k, v in _flat(sub, f"{path}/{i}").items()}
    return {path: tree}


def test_pooling_the_small_world_measures_what_judging_every_pair_does(evaluated, scored) -> None:
    """Forced pooling (threshold 0), deep enough to hold every candidate of this small
    split, random among the pooling systems: every metric, interval and aspect check
    equals the exhaustive path's."""
    params = scored["params"]
    pooling = {"above_clips": 0, "depth": 10**6, "track_depth": 10**6}
    systems = ["random", *params["pooling"]["systems"]]
    forced = dict(params, pooling=dict(params["pooling"], **pooling, systems=systems))
    pooled = _score(evaluated, forced)
    view, exhaustive = pooled["evaluation_view"], scored["evaluation_view"]
    assert view.pooled and not exhaustive.pooled
    assert view.valid.sum() == exhaustive.valid.sum(), "the pool holds every candidate"
    args = (scored["params"], scored["checks"])
    want, want_rows = measure_systems(
        exhaustive, scored["system_scores"], scored["oracle_system_scores"], *args
    )
    got, got_rows = measure_systems(
        view, pooled["system_scores"], pooled["oracle_system_scores"], forced, scored["checks"]
    )
    for task in TASKS:
        assert got["tasks"][task]["judging"]["path"] == "pooled"
        assert want["tasks"][task]["judging"]["path"] == "exhaustive"
        assert (
            got["tasks"][task]["judging"]["judged_pairs"]
            == (want["tasks"][task]["judging"]["judged_pairs"])
        )
        for system, values in want["tasks"][task]["systems"].items():
            assert got["tasks"][task]["systems"][system] == pytest.approx(values, abs=1e-6)
    assert _flat(got["intervals"]) == pytest.approx(_flat(want["intervals"]), abs=1e-6)
    pd.testing.assert_frame_equal(got_rows, want_rows, atol=1e-6)
    for system, check in want["aspect_faithfulness"].items():
        for aspect, row in check["matrix"].items():
            assert got["aspect_faithfulness"][system]["matrix"][aspect] == pytest.approx(
                row, abs=1e-6
            )
    assert _flat(got["counterfactual_curves"]) == pytest.approx(
        _flat(want["counterfactual_curves"]), abs=1e-9
    )


def test_a_query_cap_measures_each_sampled_query_as_every_clip_querying_does(
    evaluated, scored
) -> None:
    """A cap of a third of the small split: the report says how many queries of how many
    clips and units; each sampled query's metrics are its row of the uncapped run."""
    params, checks = scored["params"], scored["checks"]
    every = scored["evaluation_view"]
    forced = dict(params, queries={"max": len(every.clip_ids) // 3, "seed": 5})
    capped = _score(evaluated, forced)
    view = capped["evaluation_view"]
    assert len(view.query_clips) == len(every.clip_ids) // 3
    assert set(view.units[view.query_clips]) == set(every.units), "every unit keeps a query"
    got, got_rows = measure_systems(
        view, capped["system_scores"], capped["oracle_system_scores"], forced, checks
    )
    for task in TASKS:
        queries = got["tasks"][task]["queries"]
        assert queries["path"] == "sampled" and queries["num_queries"] == len(view.query_clips)
        assert queries["of_clips"] == len(every.clip_ids)
        assert queries["num_units"] == queries["of_units"] == len(set(every.units))
        block = got["tasks"][task]
        assert block["num_queries"] + block["num_queries_without_relevant"] == len(view.query_clips)
    keys = ["query_clip_id", "task", "system"]
    want = evaluated.load("evaluation_per_query").set_index(keys)
    mine = got_rows.set_index(keys)
    pd.testing.assert_frame_equal(mine, want.loc[mine.index], atol=1e-6)
    runs, qrels, _ = export_trec(
        view, capped["system_scores"], capped["oracle_system_scores"], forced
    )
    for files in (runs, qrels):  # the sampled queries only, every clip a candidate
        named = {line.split()[0] for text in files.values() for line in text.splitlines()}
        assert named <= set(view.query_ids)


def test_report_page_is_self_contained(evaluated) -> None:
    pages = evaluated.load("evaluation_html")
    assert set(pages) == {"report.html", "summary.md"}
    page = pages["report.html"]
    assert page.count('src="data:image/png;base64,') == 5
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "<script" not in page
    report = evaluated.load("evaluation_report")
    columns = sum(len(block["systems"]["cosine"]) for block in report["tasks"].values())
    assert page.count("★") >= columns  # the best per column of both tables
    assert page.count("±") >= columns and "Which differences are real" in page
    summary = pages["summary.md"]
    assert "| ranking |" in summary and "`projection_distilled`" in summary
    assert "Aspect selectivity" in summary and "Aspect selectivity (twins)" in page
    for name in ("ranking", "faithfulness", "counterfactual", "selectivity", "training"):
        assert evaluated.versions(f"evaluation_{name}_plot")


def _tied(scores: SystemScores) -> np.ndarray:
    return np.broadcast_to(scores.aspects.mean(-1, keepdims=True), scores.aspects.shape).copy()


def _shuffled(scores: SystemScores) -> np.ndarray:
    return np.roll(scores.aspects, 1, axis=-1)


@pytest.mark.parametrize("break_heads", [_tied, _shuffled])
@pytest.mark.parametrize("system", ["oracle", "projection_distilled"])
def test_aspect_gates_reject_a_model_that_ranks_well_but_ignores_aspects(
    scored, break_heads, system
) -> None:
    view, params, checks = scored["evaluation_view"], scored["params"], scored["checks"]
    honest = scored["system_scores"] | scored["oracle_system_scores"]
    track = checks["track_scoring"]
    broken = dict(honest, **{system: scores_from_aspects(view, break_heads(honest[system]), track)})
    # Thresholds the honest models of this small world (6 epochs) meet; ranking only lets the
    # gates under test fail.
    aspects = dict(checks["aspects"], faithfulness_min_diagonal=0.1)
    checks = dict(checks, aspects=aspects)
    ranking = dict(params["gates"]["ranking"], min_ndcg_gain=-1.0, max_ann_ndcg_drop=1.0)
    params = dict(params, gates=dict(params["gates"], ranking=ranking))
    pending = {"gate": {"status": "pending", "detail": "", "failures": []}}
    good, _ = measure_systems(view, honest, {}, params, checks)
    bad, _ = measure_systems(view, broken, {}, params, checks)
    for task in TASKS:  # equal default weights: the total is the mean of the heads
        assert bad["tasks"][task]["systems"][system]["ndcg@10"] == pytest.approx(
            good["tasks"][task]["systems"][system]["ndcg@10"], abs=1e-6
        )
    honest_gates = gate_verdicts(good, NO_TWINS, pending, params, checks)
    gates = gate_verdicts(bad, NO_TWINS, pending, params, checks)
    assert gates["ranking"].status == "passed"
    assert honest_gates["aspect_faithfulness"].status == "passed", honest_gates
    assert gates["aspect_faithfulness"].status == "failed"
    assert all(
        f.startswith(f"aspect_faithfulness: {system}/")
        for f in gates["aspect_faithfulness"].failures
    )
    if break_heads is _tied:  # raising one weight of identical heads moves nothing
        assert gates["counterfactual"].status == "failed"
        assert any("rose by +0.000" in f for f in gates["counterfactual"].failures)


def test_ranking_gate_fails_when_learned_systems_do_not_beat_the_baselines(scored) -> None:
    params, checks = scored["params"], scored["checks"]
    systems = scored["system_scores"] | scored["oracle_system_scores"]
    # projection scored with cosine's clips: no better than the baseline.
    systems["projection"] = scores_from_aspects(
        scored["evaluation_view"],
        np.repeat(systems["cosine"].clip[..., None], 5, axis=-1),
        checks["track_scoring"],
    )
    measured, _ = measure_systems(scored["evaluation_view"], systems, {}, params, checks)
    pending = {"gate": {"status": "pending", "detail": ""}}
    verdict = gate_verdicts(measured, NO_TWINS, pending, params, checks)["ranking"]
    assert verdict.status == "failed"
    # The copy of cosine fails on both tasks, on its interval's lower bound.
    for task in TASKS:
        assert f"ranking: {task} nDCG@10 projection - cosine +0.000" in verdict.detail
    assert "lower bound below" in verdict.detail


def test_failed_gate_fails_the_run_after_saving_the_report(evaluated) -> None:
    before = evaluated.versions("evaluation_report")
    strict = {"evaluation": {"gates": {"fail_on_gate": True, "ranking": {"min_ndcg_gain": 100.0}}}}
    verdicts = len(evaluated.versions("evaluation_verdict"))
    with (
        overridden(evaluated, strict),
        pytest.raises(GateFailed, match=r"ranking: clip_to_clip nDCG@10 oracle - cosine \+"),
    ):
        evaluated.run("evaluation")
    assert len(evaluated.versions("evaluation_report")) == len(before) + 1
    report = evaluated.load("evaluation_report")
    assert report["gates"]["ranking"]["status"] == "failed"
    assert "lower bound below 100.0" in report["gates"]["ranking"]["detail"]
    assert "report.html" in evaluated.load("evaluation_html")
    assert len(evaluated.versions("evaluation_verdict")) == verdicts  # no verdict: no export
    lenient = {"gates": {"fail_on_gate": False}}
    verdict = enforce_gates(report, {}, lenient)
    assert verdict["passed"] is False and verdict["gates"]["ranking"] == "failed"


# ---- human audit ---------------------------------------------------------------------------


def test_audit_kit_is_blind_stratified_and_self_contained(evaluated) -> None:
    kit, key = evaluated.load("audit_kit"), evaluated.load("audit_key")
    assert set(kit) == {"audit_kit.csv", "audit_kit.html", "README.md"}
    table = pd.read_csv(io.StringIO(kit["audit_kit.csv"]), dtype={"kit_id": str})
    params = evaluated.catalog().load("params:evaluation")["audit"]
    assert table["query_clip_id"].nunique() == params["size"]
    assert table["grade"].isna().all() and table["rater"].isna().all()
    assert not any(s in kit["audit_kit.csv"] for s in ("cosine", "oracle", "projection"))
    assert not any(c.startswith("rank_") for c in table.columns)
    assert (key["item_id"] == table["item_id"]).all()
    ranked = key[[f"rank_{s}" for s in params["pool_systems"]]]
    assert (ranked.max(axis=1) >= 1).all()  # every item came from some system's top
    assert (table["query_end_s"] > table["query_start_s"]).all()
    page = kit["audit_kit.html"]
    assert all(item in page for item in table["item_id"])
    assert "new Blob(" in page and "localStorage" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert evaluated.load("evaluation_report")["audit_kit"]["num_strata"] > 1


def _judge(table: pd.DataFrame, rater: str, grade_of) -> str:
    rows = table.assign(
        rater=rater,
        grade=[
            grade_of(q, c)
            for q, c in zip(table["query_clip_id"], table["candidate_clip_id"], strict=True)
        ],
    )
    return rows[
        ["kit_id", "rater", "item_id", "query_clip_id", "candidate_clip_id", "grade"]
    ].to_csv(index=False)


def test_audit_round_trip_with_simulated_raters(evaluated, scored) -> None:
    kit = pd.read_csv(io.StringIO(evaluated.load("audit_kit")["audit_kit.csv"]))
    view = scored["evaluation_view"]
    position = pd.Series(np.arange(len(view.clip_ids)), index=view.clip_ids)

    def truth(q: str, c: str) -> int:
        return int(view.grades[position[q], position[c]])

    folder = evaluated.data / "01_raw" / "audit_judgements"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    try:
        # Three careful raters: the true grade, sometimes off by one.
        for rater in ("ana", "ben", "chloe"):
            noisy = lambda q, c: int(np.clip(truth(q, c) + rng.choice([-1, 0, 0, 0, 0, 1]), 0, 3))  # noqa: E731
            (folder / f"{rater}.csv").write_text(_judge(kit, rater, noisy))
        # The small world's distilled head (6 epochs) orders 0.58 of the judged pairs.
        audit_gate = {"human_audit": {"min_pairwise_accuracy": 0.5}}
        with overridden(
            evaluated, {"evaluation": {"gates": {"fail_on_gate": False, **audit_gate}}}
        ):
            evaluated.run("evaluation")
        report = evaluated.load("evaluation_report")
        audit = report["human_audit"]
        assert audit["num_raters"] == 3 and audit["num_judgements"] == 3 * len(kit)
        assert audit["krippendorff_alpha_interval"] > 0.4
        accuracy = {s: v["pairwise_accuracy"] for s, v in audit["systems"].items()}
        # Measured on this small world: oracle 0.60, distilled 0.57, cosine 0.47.
        assert accuracy["oracle"] > accuracy["cosine"] + 0.1
        assert accuracy["projection_distilled"] > accuracy["cosine"] + 0.05
        assert report["gates"]["human_audit"]["status"] == "passed", report["gates"]["human_audit"]
        assert "mean_grade_of_pooled_top" in audit["systems"]["oracle"]

        # Raters who grade at random: no agreement, and the gate says so.
        for rater in ("ana", "ben", "chloe"):
            (folder / f"{rater}.csv").write_text(
                _judge(kit, rater, lambda q, c: int(rng.integers(4)))
            )
        with overridden(evaluated, LENIENT):
            evaluated.run("evaluation")
        gate = evaluated.load("evaluation_report")["gates"]["human_audit"]
        assert gate["status"] == "failed" and "Krippendorff's alpha" in gate["detail"]
    finally:
        for path in folder.glob("*.csv"):
            path.unlink()


# ---- the notebook --------------------------------------------------------------------------


def test_notebook_explores_the_outputs_through_the_catalog(evaluated) -> None:
    import nbclient
    import nbformat

    from benchmarks.scratch import REPO

    notebook = nbformat.read(REPO / "notebooks" / "evaluation_explorer.ipynb", as_version=4)
    (parameters,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    parameters.source += f"\nPROJECT_PATH = {str(REPO)!r}\nCONF_SOURCE = {str(evaluated.conf)!r}"
    client = nbclient.NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(REPO / "notebooks")}},
    )
    client.execute()
    (result,) = [o for o in notebook.cells[-1].outputs if o["output_type"] == "execute_result"]
    assert "share_learned_better" in result["data"]["text/plain"]


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's script")
def test_audit_page_saves_what_the_ingest_reads(evaluated, tmp_path) -> None:
    """The rater page's own script, on a minimal DOM: grade, save, parse the CSV."""
    kit = evaluated.load("audit_kit")
    table = pd.read_csv(io.StringIO(kit["audit_kit.csv"]), dtype={"kit_id": str})
    page, grades = tmp_path / "audit_kit.html", tmp_path / "grades.json"
    page.write_text(kit["audit_kit.html"])
    chosen = {item: i % 4 for i, item in enumerate(table["item_id"][::2])}
    grades.write_text(json.dumps(chosen))
    runner = Path(__file__).resolve().parents[1] / "js" / "run_audit_page.js"
    saved = subprocess.run(
        ["node", str(runner), str(page), str(grades), "Ana B"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    judgements, notes = parse_judgements({"judgements_ana.csv": saved})
    assert notes == [] and set(judgements["rater"]) == {"Ana B"}
    assert dict(zip(judgements["item_id"], judgements["grade"], strict=True)) == chosen
    expected = table.set_index("item_id").loc[list(chosen)]
    assert list(judgements["candidate_clip_id"]) == list(expected["candidate_clip_id"])
    assert set(judgements["kit_id"]) == set(table["kit_id"])
