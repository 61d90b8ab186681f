"""``report.html`` (self-contained, opens from disk) and ``summary.md`` from the report JSON.

Both render Jinja2 templates (``evaluation/templates/``) with autoescape; this module only
shapes the report into rows.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from expressive_retrieval.evaluation.rendering import render

TASK_TITLES = {"clip_to_clip": "clip → clip", "clip_to_track": "clip → track"}


def _cell(report: dict[str, Any], task: str, name: str, metric: str) -> dict[str, Any]:
    systems = report["tasks"][task]["systems"]
    value = systems[name][metric]
    interval = report["intervals"][task][name][metric]
    return {
        "value": value,
        "pm": (interval["high"] - interval["low"]) / 2,
        "best": abs(value - max(v[metric] for v in systems.values())) < 1e-12,
    }


def _judging(task: str, judging: dict[str, Any]) -> dict[str, Any]:
    """The task's judging block, with ``top``: how deep each pooling system pooled."""
    return judging | {"top": judging.get("track_depth" if task == "clip_to_track" else "depth")}


def _tasks(report: dict[str, Any]) -> list[dict[str, Any]]:
    tasks = []
    for task, block in report["tasks"].items():
        metrics = list(next(iter(block["systems"].values())))
        tasks.append(
            {
                "title": TASK_TITLES.get(task, task),
                "num_queries": block["num_queries"],
                "without": block.get("num_queries_without_relevant", 0),
                "candidates": block.get("num_candidates", "–"),
                "judging": _judging(task, block.get("judging", {"path": "exhaustive"})),
                "metrics": metrics,
                "rows": [
                    {"name": name, "cells": [_cell(report, task, name, m) for m in metrics]}
                    for name in block["systems"]
                ],
                "ndcg": {name: _cell(report, task, name, "ndcg@10") for name in block["systems"]},
            }
        )
    return tasks


def _aspects(report: dict[str, Any]) -> dict[str, Any]:
    rows, names = [], []
    for name, faith in report["aspect_faithfulness"].items():
        counterfactual = report["counterfactual"][name]
        names = list(faith["per_aspect"])
        cells = [
            {
                "diagonal": faith["per_aspect"][a]["diagonal"],
                "effect": counterfactual[a]["effect"]["mean"],
                "low": counterfactual[a]["effect"]["low"],
                "high": counterfactual[a]["effect"]["high"],
            }
            for a in names
        ]
        passed = faith["passed"] and counterfactual["passed"]
        rows.append({"name": name, "cells": cells, "verdict": "passes" if passed else "fails"})
    top_k = report.get("parameters", {}).get("aspects", {}).get("counterfactual_top_k", "k")
    return {"names": names, "rows": rows, "top_k": top_k}


def _selectivity(report: dict[str, Any]) -> dict[str, Any]:
    """Per system: the matrix rows (moved aspect) and the per-aspect ratios with lower bounds."""
    block = report["aspect_selectivity"]
    systems, names = [], []
    for name, verdict in block["systems"].items():
        names = list(verdict["per_aspect"])
        systems.append(
            {
                "name": name,
                "verdict": "passes" if verdict["passed"] else "fails",
                "rows": [
                    {"moved": m, "cells": [verdict["matrix"][m][a] for a in names]} for m in names
                ],
                "ratios": [verdict["per_aspect"][a] for a in names],
            }
        )
    return {
        "twins": block["twins"],
        "detail": block["detail"],
        "names": names,
        "systems": systems,
        "min_ratio": block["min_ratio"],
    }


def _context(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "dataset_version": report["dataset_version"],
        "split": report["split"],
        "uncertainty": report["uncertainty"],
        "gates": [{"name": n, **g} for n, g in report["gates"].items()],
        "tasks": _tasks(report),
        "system_names": list(next(iter(report["tasks"].values()))["systems"]),
        "findings": report["findings"],
        "comparisons": [
            {"title": TASK_TITLES.get(task, task), "rows": rows}
            for task, rows in report["comparisons"].items()
        ],
        "num_comparisons": sum(len(rows) for rows in report["comparisons"].values()),
        "selectivity": _selectivity(report),
    }


def report_html(report: dict[str, Any], images: dict[str, str]) -> str:
    """The whole report page; ``images`` maps a plot name to its base64 PNG."""

    def figure(name: str, alt: str) -> Markup:
        if name not in images:
            return Markup("")
        return Markup('<img alt="{}" src="data:image/png;base64,{}">').format(alt, images[name])

    return render(
        "report.html.j2",
        **_context(report),
        figure=figure,
        aspects=_aspects(report),
        kit=report["audit_kit"],
        audit=report["human_audit"],
        timing=report.get("timing", {}),
    )


def summary_markdown(report: dict[str, Any]) -> str:
    """A short Markdown summary: gates, nDCG@10 with intervals, which differences are real."""
    return render("summary.md.j2", **_context(report))
