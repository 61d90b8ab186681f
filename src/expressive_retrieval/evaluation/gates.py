"""Gates: one verdict type, one failure format, the checks on evidence (docs/evaluation.md, "Gates").

Used by the oracle's validation gate, evaluation's five gates and export's refusal to bundle
a model that failed one. A failure is one line ``"<gate>: <subject> <figures>"``; a verdict
is ``passed``, ``failed``, ``pending`` or ``not_applicable`` with a ``detail`` naming the
figures. Ranking, counterfactual and selectivity checks decide on the lower bounds of 95%
cluster-bootstrap intervals (``evaluation.uncertainty``), never on means.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

# not_applicable: the evidence a gate needs does not exist in this catalogue (e.g. no twins
# for aspect_selectivity); it blocks nothing.
STATUSES = ("passed", "failed", "pending", "not_applicable")


@dataclass(frozen=True)
class Verdict:
    """One gate's outcome; ``to_dict`` is its form in reports and manifests."""

    status: str
    detail: str
    failures: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        assert self.status in STATUSES, self.status

    @classmethod
    def of(cls, failures: Iterable[str], scope: str) -> Verdict:
        """``failed`` with every failure, or ``passed`` saying what was checked."""
        failures = tuple(failures)
        if failures:
            return cls("failed", "; ".join(failures), failures)
        return cls("passed", f"passed: {scope}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        return cls(data["status"], data.get("detail", ""), tuple(data.get("failures", ())))

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "detail": self.detail, "failures": list(self.failures)}


class GateFailed(RuntimeError):
    """A gate failed and the caller was asked to stop on it."""


def failure(gate: str, subject: str, figures: str) -> str:
    """The one failure format: ``"<gate>: <subject> <figures>"``."""
    return f"{gate}: {subject} {figures}"


def enforce(
    verdicts: Mapping[str, Verdict], what: str, stop: bool, consequence: str
) -> dict[str, str]:
    """Raise (``stop``) or warn when a verdict failed; return ``{gate: status}``.

    Args:
        verdicts: the gates of one decision, by name.
        what: who decides, for the message (e.g. ``"Evaluation"``).
        stop: raise ``GateFailed`` instead of warning.
        consequence: what the failure means, appended to the message.
    """
    failed = {name: v for name, v in verdicts.items() if v.status == "failed"}
    statuses = {name: v.status for name, v in verdicts.items()}
    if not failed:
        return statuses
    lines = [line for v in failed.values() for line in (v.failures or (v.detail,))]
    message = f"{what} gate(s) failed: {', '.join(failed)}\n  - " + "\n  - ".join(lines)
    if stop:
        raise GateFailed(f"{message}\n{consequence}")
    logger.warning("%s\nGoing on, as configured.", message)
    return statuses


def report_digest(report: Mapping[str, Any]) -> str:
    """sha256 of a report's canonical JSON: names the report a verdict was given on."""
    canonical = json.dumps(report, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def check_release(
    report: Mapping[str, Any], verdict: Mapping[str, Any], allow_failed: bool
) -> dict[str, str]:
    """Export's check: the verdict was given on this report, and no gate failed.

    Args:
        report: the evaluation report being bundled.
        verdict: ``evaluation_verdict``, written by the gate step after it judged a report.
        allow_failed: bundle a model whose evaluation failed a gate (with a warning).

    Returns:
        ``{gate: status}``.

    Raises:
        GateFailed: the verdict is of another report (the gates did not run on this
            one), or a gate failed and ``allow_failed`` is false.
    """
    if verdict.get("report_sha256") != report_digest(report):
        raise GateFailed(
            "evaluation_verdict was not given on this evaluation_report (the gate step did "
            "not run after it, or failed): rerun `kedro run --pipelines=evaluation`"
        )
    verdicts = {name: Verdict.from_dict(v) for name, v in report["gates"].items()}
    return enforce(
        verdicts,
        "Evaluation",
        not allow_failed,
        "Refusing to bundle the model (set export.allow_failed_gates: true to bundle it anyway).",
    )


def _interval(c: Mapping[str, float]) -> str:
    return f"{c['mean_diff']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]"


def ranking_failures(
    comparisons: Mapping[str, Mapping[tuple[str, str], Mapping[str, float]]],
    systems: Iterable[str],
    baselines: Iterable[str],
    min_gain: float,
) -> list[str]:
    """Every (task, system, baseline) whose nDCG@10 gain's 95% lower bound is below ``min_gain``.

    Args:
        comparisons: ``{task: {(a, b): {mean_diff, low, high, ...}}}``, ``a - b`` on nDCG@10.
    """
    return [
        failure(
            "ranking",
            f"{task} nDCG@10 {system} - {baseline}",
            f"{_interval(pairs[(system, baseline)])}: lower bound below {min_gain}",
        )
        for task, pairs in comparisons.items()
        for system in systems
        for baseline in baselines
        if pairs[(system, baseline)]["low"] < min_gain
    ]


def ann_failures(
    comparisons: Mapping[str, Mapping[tuple[str, str], Mapping[str, float]]],
    ann: str,
    exact: str,
    max_drop: float,
) -> list[str]:
    """Every task where the index may lose more than ``max_drop`` nDCG@10 against exact search."""
    return [
        failure(
            "ranking",
            f"{task} nDCG@10 {ann} - {exact}",
            f"{_interval(pairs[(ann, exact)])}: may lose more than {max_drop}",
        )
        for task, pairs in comparisons.items()
        if pairs[(ann, exact)]["low"] < -max_drop
    ]


def aspect_failures(
    report: Mapping[str, Any], checks: Mapping[str, Any], label: str = ""
) -> list[str]:
    """``aspect_faithfulness`` and ``counterfactual`` failures of one system's aspect report.

    ``label`` prefixes each aspect (e.g. ``"oracle/"``) when several systems are checked.
    """
    failures = [
        failure(
            "aspect_faithfulness",
            f"{label}{aspect}",
            f"diagonal {v['diagonal']:.3f} (min {checks['faithfulness_min_diagonal']}), "
            f"margin {v['margin']:.3f} (min {checks['faithfulness_min_margin']})",
        )
        for aspect, v in report["aspect_faithfulness"]["per_aspect"].items()
        if not v["passed"]
    ]
    for aspect, result in report["counterfactual"].items():
        if aspect == "passed":
            continue
        effect, other = result["effect"], result["worst_other"]
        if effect["low"] <= checks["counterfactual_min_effect"]:
            failures.append(
                failure(
                    "counterfactual",
                    f"{label}{aspect}",
                    f"top-{checks['counterfactual_top_k']} target_{aspect} rose by "
                    f"{effect['mean']:+.3f} [{effect['low']:+.3f}, {effect['high']:+.3f}]: "
                    f"lower bound not above {checks['counterfactual_min_effect']}",
                )
            )
        if other["low"] < -checks["counterfactual_max_other_drop"]:
            failures.append(
                failure(
                    "counterfactual",
                    f"{label}{aspect}",
                    f"boosted, top-{checks['counterfactual_top_k']} target_{other['aspect']} "
                    f"changed by {other['mean']:+.3f} [{other['low']:+.3f}, {other['high']:+.3f}]: "
                    f"may fall by more than {checks['counterfactual_max_other_drop']}",
                )
            )
    return failures


def selectivity_failures(
    selectivity: Mapping[str, Any], min_ratio: float, label: str = ""
) -> list[str]:
    """``aspect_selectivity`` failures of one system's ``selectivity_verdict``: every aspect
    whose own-twin response is not, at its lower bound, ``min_ratio`` times its largest
    response to another aspect's twins."""
    return [
        failure(
            "aspect_selectivity",
            f"{label}{aspect}",
            f"sub-score moved {v['own']:.4f} by its own twins, {v['largest_other']:.4f} by "
            f"{v['other_aspect']} twins: ratio {v['ratio']:.2f} (lower bound "
            f"{v['ratio_low']:.2f}) below {min_ratio}",
        )
        for aspect, v in selectivity["per_aspect"].items()
        if v["ratio_low"] < min_ratio
    ]
