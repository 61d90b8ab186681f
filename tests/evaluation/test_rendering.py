"""The report page, the summary and the rater page escape every name they take from data."""

from __future__ import annotations

import pandas as pd

from expressive_retrieval.evaluation.audit.page import audit_page
from expressive_retrieval.evaluation.report.page import report_html, summary_markdown

EVIL = "<script>alert(1)</script>"
SYSTEM, ASPECT = f"sys{EVIL}", f"tempo{EVIL}"


def _report() -> dict:
    metrics = {"recall@1": 0.2, "mrr": 0.4, "ndcg@10": 0.5}
    bounds = {m: {"low": v - 0.1, "high": v + 0.1} for m, v in metrics.items()}
    comparison = {
        "a": SYSTEM,
        "b": "cosine",
        "metric": "ndcg@10",
        "mean_diff": 0.1,
        "low": 0.05,
        "high": 0.15,
        "p_value": 0.001,
        "p_holm": 0.002,
        "real": True,
    }
    effect = {"mean": 0.1, "low": 0.05, "high": 0.15}
    return {
        "dataset_version": f"v{EVIL}",
        "split": "test",
        "uncertainty": {
            "unit": "group_id",
            "num_units": 9,
            "resamples": 1000,
            "family_wise_alpha": 0.05,
        },
        "gates": {
            "ranking": {"status": "failed", "detail": f"ranking: {SYSTEM} worse", "failures": []}
        },
        "tasks": {
            "clip_to_clip": {
                "num_queries": 3,
                "num_queries_without_relevant": 0,
                "num_candidates": 4,
                "systems": {SYSTEM: metrics, "cosine": metrics},
            }
        },
        "intervals": {"clip_to_clip": {SYSTEM: bounds, "cosine": bounds}},
        "comparisons": {"clip_to_clip": [comparison]},
        "findings": [f"clip_to_clip: {SYSTEM} is better than cosine"],
        "aspect_faithfulness": {
            SYSTEM: {
                "matrix": {ASPECT: {ASPECT: 0.9}},
                "per_aspect": {ASPECT: {"diagonal": 0.9, "margin": 0.5, "passed": True}},
                "passed": True,
            }
        },
        "counterfactual": {
            SYSTEM: {ASPECT: {"share_moved_as_expected": 1.0, "effect": effect}, "passed": True}
        },
        "aspect_selectivity": {
            "twins": {"source_tracks": 1, "source_clips": 2, "twin_clips": 2, "queries": 3},
            "detail": f"twins{EVIL}",
            "min_ratio": 3.0,
            "systems": {
                SYSTEM: {
                    "matrix": {ASPECT: {ASPECT: 0.2}},
                    "per_aspect": {
                        ASPECT: {
                            "own": 0.2,
                            "largest_other": 0.0,
                            "other_aspect": None,
                            "ratio": 1e11,
                            "ratio_low": 1e11,
                            "passed": True,
                        }
                    },
                    "passed": True,
                }
            },
        },
        "audit_kit": {
            "kit_id": f"k{EVIL}",
            "num_queries": 1,
            "num_strata": 1,
            "strata": [f"artist{EVIL}"],
            "num_items": 1,
            "pool_systems": [SYSTEM],
            "pool_depth": 3,
        },
        "human_audit": {
            "num_raters": 1,
            "num_judgements": 1,
            "krippendorff_alpha_interval": None,
            "systems": {SYSTEM: {"pairwise_accuracy": 0.5, "pairs": 2}},
        },
        "timing": {SYSTEM: {"scoring_seconds": 0.1}},
    }


def test_report_page_and_summary_escape_system_and_aspect_names() -> None:
    page = report_html(_report(), {"ranking": "AAAA"})
    assert EVIL not in page and "<script" not in page
    assert "sys&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "tempo&lt;script&gt;" in page
    assert 'src="data:image/png;base64,AAAA"' in page  # the trusted image stays markup
    summary = summary_markdown(_report())
    assert EVIL not in summary and "sys&lt;script&gt;" in summary


def test_rater_page_escapes_ids_in_markup_and_in_its_embedded_data() -> None:
    kit = pd.DataFrame(
        {
            "kit_id": [f"k{EVIL}"],
            "item_id": [f"q0-c0{EVIL}"],
            "query_number": [0],
            "query_clip_id": [f"clip{EVIL}"],
            "query_start_s": [0.0],
            "query_end_s": [30.0],
            "query_audio_uri": [""],
            "candidate_clip_id": [f"cand{EVIL}"],
            "candidate_start_s": [0.0],
            "candidate_end_s": [30.0],
            "candidate_audio_uri": [f"https://x/{EVIL}.wav"],
        }
    )
    page = audit_page(kit)
    assert EVIL not in page  # neither in the title nor in the JSON inside <script>
    assert "k&lt;script&gt;" in page and "\\u003cscript\\u003e" in page
    assert page.count("<script>") == 1  # the page's own script only


def test_report_page_says_when_a_task_was_judged_on_a_pool() -> None:
    report = _report()
    assert "Judged on a pool" not in report_html(report, {})
    report["tasks"]["clip_to_clip"]["judging"] = {
        "path": "pooled",
        "depth": 100,
        "track_depth": 50,
        "systems": [SYSTEM, "cosine"],
        "mean_pool_size": 211.5,
    }
    page = report_html(report, {})
    assert "Judged on a pool: the union of the top 100 of" in page
    assert "211.5 candidates per query" in page and "count as non-relevant" in page
    assert EVIL not in page
