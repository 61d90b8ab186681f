"""Each gate fails for its own reason, in the one failure format, on intervals not means."""

from __future__ import annotations

import pytest

from expressive_retrieval.evaluation.gates import (
    GateFailed,
    Verdict,
    ann_failures,
    aspect_failures,
    check_release,
    enforce,
    ranking_failures,
    report_digest,
)

CHECKS = {
    "faithfulness_min_diagonal": 0.3,
    "faithfulness_min_margin": 0.1,
    "counterfactual_top_k": 10,
    "counterfactual_min_effect": 0.02,
    "counterfactual_max_other_drop": 0.05,
}


def _diff(mean: float, low: float, high: float) -> dict[str, float]:
    return {"mean_diff": mean, "low": low, "high": high, "p_value": 0.01}


def test_ranking_decides_on_the_lower_bound_not_the_mean() -> None:
    comparisons = {
        "clip_to_clip": {
            ("learned", "cosine"): _diff(0.30, 0.20, 0.40),
            # A large mean whose interval reaches below the margin: not enough evidence.
            ("learned", "discovery_cosine"): _diff(0.10, 0.01, 0.19),
        }
    }
    failures = ranking_failures(comparisons, ["learned"], ["cosine", "discovery_cosine"], 0.05)
    assert failures == [
        "ranking: clip_to_clip nDCG@10 learned - discovery_cosine +0.100 [+0.010, +0.190]: "
        "lower bound below 0.05"
    ]
    assert ranking_failures(comparisons, ["learned"], ["cosine"], 0.05) == []


def test_an_index_that_may_lose_too_much_fails() -> None:
    comparisons = {
        "clip_to_track": {
            ("ann", "exact"): _diff(-0.01, -0.03, 0.0),
            ("flat", "exact"): _diff(0.0, 0.0, 0.0),
        }
    }
    (line,) = ann_failures(comparisons, "ann", "exact", 0.02)
    assert line.startswith("ranking: clip_to_track nDCG@10 ann - exact -0.010")
    assert line.endswith("may lose more than 0.02")
    assert ann_failures(comparisons, "flat", "exact", 0.02) == []


def _aspects(effect_low: float, other_low: float, diagonal: float = 0.8) -> dict:
    interval = {"aspect": "dynamics", "mean": other_low + 0.01, "low": other_low, "high": 0.1}
    return {
        "aspect_faithfulness": {
            "per_aspect": {
                "tempo": {"diagonal": diagonal, "margin": 0.5, "passed": diagonal >= 0.3}
            }
        },
        "counterfactual": {
            "tempo": {
                "share_moved_as_expected": 0.9,
                "effect": {"mean": effect_low + 0.01, "low": effect_low, "high": 0.3},
                "worst_other": interval,
            },
            "passed": True,
        },
    }


def test_counterfactual_needs_a_rise_with_evidence_and_the_others_to_hold() -> None:
    assert aspect_failures(_aspects(0.05, -0.01), CHECKS) == []
    (weak,) = aspect_failures(_aspects(0.01, -0.01), CHECKS, "oracle/")
    assert weak.startswith("counterfactual: oracle/tempo top-10 target_tempo rose by +0.020")
    assert weak.endswith("lower bound not above 0.02")
    (collateral,) = aspect_failures(_aspects(0.05, -0.08), CHECKS, "oracle/")
    assert collateral.startswith("counterfactual: oracle/tempo boosted, top-10 target_dynamics")
    assert collateral.endswith("may fall by more than 0.05")


def test_faithfulness_fails_on_its_own_figures() -> None:
    (line,) = aspect_failures(_aspects(0.05, 0.0, diagonal=0.1), CHECKS)
    assert line == "aspect_faithfulness: tempo diagonal 0.100 (min 0.3), margin 0.500 (min 0.1)"


def test_one_verdict_type_and_enforcement() -> None:
    passed = Verdict.of([], "everything")
    failed = Verdict.of(["ranking: a b"], "everything")
    assert passed.to_dict() == {"status": "passed", "detail": "passed: everything", "failures": []}
    assert Verdict.from_dict(failed.to_dict()) == failed
    with pytest.raises(AssertionError):
        Verdict("maybe", "")
    verdicts = {"ranking": failed, "human_audit": Verdict("pending", "no judgements")}
    with pytest.raises(
        GateFailed, match="Oracle gate\\(s\\) failed: ranking\n  - ranking: a b\nstop"
    ):
        enforce(verdicts, "Oracle", True, "stop")
    assert enforce(verdicts, "Oracle", False, "") == {"ranking": "failed", "human_audit": "pending"}


def test_export_refuses_a_stale_verdict_and_a_failed_gate() -> None:
    report = {"gates": {"ranking": Verdict.of([], "x").to_dict()}}
    verdict = {"passed": True, "report_sha256": report_digest(report)}
    assert check_release(report, verdict, allow_failed=False) == {"ranking": "passed"}
    changed = {"gates": {"ranking": Verdict.of(["ranking: worse"], "x").to_dict()}}
    with pytest.raises(GateFailed, match="not given on this evaluation_report"):
        check_release(changed, verdict, allow_failed=False)
    judged = {"passed": False, "report_sha256": report_digest(changed)}
    with pytest.raises(GateFailed, match="ranking: worse\nRefusing to bundle"):
        check_release(changed, judged, allow_failed=False)
    assert check_release(changed, judged, allow_failed=True) == {"ranking": "failed"}
