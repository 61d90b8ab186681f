"""Report nodes of ``evaluation``: assemble the report, gate it, plot and render it.

The gates decide on the measurements' intervals (``evaluation/gates.py``); the pages are
Jinja2 templates (``evaluation/report/page.py``).
"""

from __future__ import annotations

import logging
from typing import Any

from matplotlib.figure import Figure

from expressive_retrieval.evaluation.gates import (
    Verdict,
    ann_failures,
    aspect_failures,
    enforce,
    ranking_failures,
    report_digest,
    selectivity_failures,
)
from expressive_retrieval.evaluation.report.figures import (
    counterfactual_plot,
    faithfulness_plot,
    png_base64,
    ranking_plot,
    selectivity_plot,
    training_plot,
)
from expressive_retrieval.evaluation.report.page import report_html, summary_markdown

logger = logging.getLogger(__name__)

GATES = ("ranking", "aspect_faithfulness", "counterfactual", "aspect_selectivity", "human_audit")


def _training_curves(**metadata: dict[str, Any]) -> dict[str, Any]:
    """Per-epoch loss and validation nDCG@10 of each trained model."""
    curves = {}
    for name, meta in metadata.items():
        history = meta.get("history", [])
        curves[name] = {
            "epochs": [h["epoch"] for h in history],
            "loss": [h["loss"] for h in history],
            "val_ndcg@10": [h["val_ndcg@10"] for h in history],
            "best_epoch": meta.get("best_epoch"),
            "wall_time_s": meta.get("wall_time_s"),
        }
    return curves


def selectivity_gate(selectivity: dict[str, Any], gate: dict[str, Any]) -> Verdict:
    """``aspect_selectivity``: ``not_applicable`` without twins, else every gated system's
    ``gates.selectivity_failures``."""
    if selectivity["twins"] is None:
        return Verdict("not_applicable", selectivity["detail"])
    failures = [
        line
        for system in gate["systems"]
        for line in selectivity_failures(
            selectivity["systems"][system], gate["min_ratio"], f"{system}/"
        )
    ]
    return Verdict.of(
        failures,
        f"{', '.join(gate['systems'])}: each sub-score moves at least {gate['min_ratio']}x "
        f"more on its own aspect's twins than on any other's (lower bound; "
        f"{selectivity['detail']})",
    )


def gate_verdicts(
    measurements: dict[str, Any],
    selectivity: dict[str, Any],
    human_audit: dict[str, Any],
    params: dict[str, Any],
    checks: dict[str, Any],
) -> dict[str, Verdict]:
    """The five gates (docs/evaluation.md, "Gates"), deciding on 95% intervals.

    ``ranking``: every gated system's nDCG@10 gain over every baseline has a lower bound
    of at least ``min_ndcg_gain`` on both tasks, and no index may lose more than
    ``max_ann_ndcg_drop`` against exact search (the lower bound of index - exact).
    ``aspect_faithfulness`` and ``counterfactual``: ``gates.aspect_failures`` of the gated
    systems. ``aspect_selectivity``: ``gates.selectivity_failures`` of the gated systems
    (``not_applicable`` without twins). ``human_audit``: ``human_audit["gate"]``.
    """
    gates = params["gates"]
    ranking = gates["ranking"]
    keyed = {
        task: {(c["a"], c["b"]): c for c in rows}
        for task, rows in measurements["comparisons"].items()
    }
    failures = ranking_failures(
        keyed, ranking["systems"], ranking["baselines"], ranking["min_ndcg_gain"]
    )
    for ann in ranking["indexes"]:
        failures += ann_failures(keyed, ann, ranking["exact"], ranking["max_ann_ndcg_drop"])
    verdicts = {
        "ranking": Verdict.of(
            failures,
            f"{', '.join(ranking['systems'])} - {' and '.join(ranking['baselines'])} nDCG@10 "
            f"lower bounds ≥ {ranking['min_ndcg_gain']}; "
            f"{' and '.join(ranking['indexes'])} lose at most {ranking['max_ann_ndcg_drop']}",
        )
    }
    for gate in ("aspect_faithfulness", "counterfactual"):
        failures = [
            line
            for system in gates[gate]["systems"]
            for line in aspect_failures(
                {
                    "aspect_faithfulness": measurements["aspect_faithfulness"][system],
                    "counterfactual": measurements["counterfactual"][system],
                },
                checks["aspects"],
                f"{system}/",
            )
            if line.startswith(f"{gate}:")
        ]
        verdicts[gate] = Verdict.of(failures, f"checked for {', '.join(gates[gate]['systems'])}")
    verdicts["aspect_selectivity"] = selectivity_gate(selectivity, gates["aspect_selectivity"])
    verdicts["human_audit"] = Verdict.from_dict(human_audit["gate"])
    return verdicts


def assemble_report(
    dataset_version: dict[str, Any],
    measurements: dict[str, Any],
    selectivity: dict[str, Any],
    trec_summary: dict[str, Any],
    audit_summary: dict[str, Any],
    human_audit: dict[str, Any],
    oracle_training_metadata: dict[str, Any],
    projection_training_metadata: dict[str, Any],
    projection_ablation_training_metadata: dict[str, Any],
    params: dict[str, Any],
    checks: dict[str, Any],
) -> dict[str, Any]:
    """``evaluation_report``: the schema of docs/design.md ("Evaluation report") plus extras.

    The extras: aspect selectivity, timing, training curves, the audit and TREC line counts.
    """
    gates = gate_verdicts(measurements, selectivity, human_audit, params, checks)
    report = {
        "dataset_version": dataset_version["dataset_version"],
        "bundle_version": None,
        "split": params["split"],
        **measurements,
        "aspect_selectivity": selectivity,
        "gates": {name: verdict.to_dict() for name, verdict in gates.items()},
        "training_curves": _training_curves(
            oracle=oracle_training_metadata,
            projection_distilled=projection_training_metadata,
            projection=projection_ablation_training_metadata,
        ),
        "human_audit": {k: v for k, v in human_audit.items() if k != "gate"},
        "audit_kit": audit_summary,
        "trec": trec_summary,
        "parameters": {
            "gates": params["gates"],
            "comparisons": params["comparisons"],
            "selectivity": params["selectivity"],
            **checks,
        },
    }
    for name, verdict in gates.items():
        logger.info("Evaluation gate %s: %s", name, verdict.status)
    for line in report["findings"]:
        logger.info("%s", line)
    return report


def plot_report(
    evaluation_report: dict[str, Any],
) -> tuple[Figure, Figure, Figure, Figure, Figure, dict[str, str]]:
    """The report's figures (saved for kedro-viz) and the same as base64 PNGs for the page."""
    figures = {
        "ranking": ranking_plot(evaluation_report),
        "faithfulness": faithfulness_plot(evaluation_report),
        "counterfactual": counterfactual_plot(evaluation_report),
        "selectivity": selectivity_plot(evaluation_report),
        "training": training_plot(evaluation_report),
    }
    images = {name: png_base64(fig) for name, fig in figures.items()}
    return (*figures.values(), images)


def render_report(evaluation_report: dict[str, Any], images: dict[str, str]) -> dict[str, str]:
    """``report.html`` (figures embedded, no network) and ``summary.md``."""
    return {
        "report.html": report_html(evaluation_report, images),
        "summary.md": summary_markdown(evaluation_report),
    }


def enforce_gates(
    evaluation_report: dict[str, Any], evaluation_html: dict[str, str], params: dict[str, Any]
) -> dict[str, Any]:
    """Fail the run when a gate failed, once the report and its page are saved.

    Returns:
        ``evaluation_verdict``: ``{"passed", "gates": {gate: status}, "report_sha256"}``;
        export takes it as an input, so it runs only after the gates, on the report they
        judged.

    Raises:
        GateFailed: naming every failed gate and its figures (``fail_on_gate`` true).
    """
    verdicts = {name: Verdict.from_dict(v) for name, v in evaluation_report["gates"].items()}
    statuses = enforce(
        verdicts,
        "Evaluation",
        params["gates"]["fail_on_gate"],
        f"The evaluation report and its page ({len(evaluation_html)} files) are saved.",
    )
    return {
        "passed": "failed" not in statuses.values(),
        "gates": statuses,
        "report_sha256": report_digest(evaluation_report),
    }
