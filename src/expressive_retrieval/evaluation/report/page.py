"""``report.html`` (self-contained, opens from disk) and ``summary.md`` from the report JSON."""

from __future__ import annotations

import html
from typing import Any

from expressive_retrieval.evaluation.metrics import METRICS

TASK_TITLES = {"clip_to_clip": "clip → clip", "clip_to_track": "clip → track"}
BASELINES = ("cosine", "discovery_cosine")

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.best { font-weight: bold; background: #e3f2e1; }
.passed { color: #1b6e20; } .failed { color: #b00020; } .pending { color: #8a6d00; }
img { max-width: 100%; }
code { background: #f4f4f4; padding: 0 0.2rem; }
"""


def _best(systems: dict[str, dict[str, float]], metric: str) -> float:
    return max(values[metric] for values in systems.values())


def ranking_table(task: str, block: dict[str, Any]) -> str:
    """One task's system × metric table; the best value per column is bold (ties too)."""
    systems = block["systems"]
    head = "".join(f"<th>{m}</th>" for m in METRICS)
    rows = []
    for name, values in systems.items():
        cells = "".join(
            f'<td class="best">{values[m]:.3f} ★</td>'
            if abs(values[m] - _best(systems, m)) < 1e-12
            else f"<td>{values[m]:.3f}</td>"
            for m in METRICS
        )
        rows.append(f"<tr><td><code>{html.escape(name)}</code></td>{cells}</tr>")
    caption = (
        f"{TASK_TITLES.get(task, task)}: {block['num_queries']} queries "
        f"({block.get('num_queries_without_relevant', 0)} without a relevant candidate, left out)"
    )
    return f"<h3>{caption}</h3><table><tr><th>system</th>{head}</tr>{''.join(rows)}</table>"


def _gates_table(gates: dict[str, Any]) -> str:
    rows = "".join(
        f'<tr><td>{name}</td><td class="{g["status"]}">{g["status"]}</td>'
        f'<td style="text-align:left">{html.escape(g["detail"])}</td></tr>'
        for name, g in gates.items()
    )
    return f"<table><tr><th>gate</th><th>status</th><th>detail</th></tr>{rows}</table>"


def _aspect_table(report: dict[str, Any]) -> str:
    rows = []
    for name, faith in report["aspect_faithfulness"].items():
        counterfactual = report["counterfactual"][name]
        aspects = list(faith["per_aspect"])
        cells = "".join(
            f"<td>{faith['per_aspect'][a]['diagonal']:.2f} / "
            f"{counterfactual[a]['share_moved_as_expected']:.2f}</td>"
            for a in aspects
        )
        verdict = "passes" if faith["passed"] and counterfactual["passed"] else "fails"
        rows.append(f"<tr><td><code>{name}</code></td>{cells}<td>{verdict}</td></tr>")
    if not rows:
        return ""
    aspects = list(next(iter(report["aspect_faithfulness"].values()))["per_aspect"])
    head = "".join(f"<th>{a}</th>" for a in aspects)
    return (
        "<p>Per aspect: faithfulness diagonal (Spearman of the aspect's sub-score with its own "
        "target) / share of queries whose top-k moved towards the aspect when its weight was "
        "raised.</p>"
        f"<table><tr><th>system</th>{head}<th>checks</th></tr>{''.join(rows)}</table>"
    )


def _audit_section(report: dict[str, Any]) -> str:
    audit, kit = report["human_audit"], report["audit_kit"]
    text = (
        f"<p>Kit <code>{kit['kit_id']}</code>: {kit['num_queries']} queries over "
        f"{kit['num_strata']} strata ({', '.join(kit['strata'])}), {kit['num_items']} blinded "
        f"candidates pooled from {', '.join(kit['pool_systems'])} (top {kit['pool_depth']}).</p>"
    )
    if not audit.get("systems"):
        return text + "<p>No judgements returned yet: the human-audit gate is pending.</p>"
    alpha = audit.get("krippendorff_alpha_interval")
    rows = "".join(
        f"<tr><td><code>{name}</code></td><td>"
        f"{'–' if v['pairwise_accuracy'] is None else format(v['pairwise_accuracy'], '.3f')}"
        f"</td><td>{v['pairs']}</td></tr>"
        for name, v in audit["systems"].items()
    )
    return text + (
        f"<p>{audit['num_raters']} rater(s), {audit['num_judgements']} judgements; "
        f"Krippendorff's alpha (interval): {'–' if alpha is None else format(alpha, '.3f')}.</p>"
        f"<table><tr><th>system</th><th>pairwise preference accuracy</th><th>pairs</th></tr>{rows}</table>"
    )


def report_html(report: dict[str, Any], images: dict[str, str]) -> str:
    """The whole report page; ``images`` maps a plot name to its base64 PNG."""

    def figure(name: str, alt: str) -> str:
        return (
            f'<img alt="{alt}" src="data:image/png;base64,{images[name]}">'
            if name in images
            else ""
        )

    tables = "".join(ranking_table(task, block) for task, block in report["tasks"].items())
    timing = ", ".join(
        f"{k} {v['scoring_seconds']:.2f}s" for k, v in report.get("timing", {}).items()
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Expressive retrieval evaluation</title>
<style>{_STYLE}</style></head><body>
<h1>Expressive retrieval evaluation</h1>
<p>Dataset version <code>{report["dataset_version"]}</code>, split <code>{report["split"]}</code>.
Every clip of the split queries the split's clips and tracks, its own track excluded; graded
relevance from the proxy targets; metrics with trec_eval's definitions (★ = best per column).</p>
<h2>Gates</h2>{_gates_table(report["gates"])}
<h2>Ranking</h2>{tables}{figure("ranking", "bar charts of the systems")}
<h2>Aspect behaviour</h2>{_aspect_table(report)}
{figure("faithfulness", "faithfulness heat maps")}
<h3>Counterfactual curves</h3>{figure("counterfactual", "counterfactual curves")}
<h2>Training</h2>{figure("training", "training curves")}
<h2>Human audit</h2>{_audit_section(report)}
<p style="color:#666">Scoring time: {html.escape(timing)}.</p>
</body></html>
"""


def summary_markdown(report: dict[str, Any]) -> str:
    """A short Markdown summary: gates, the nDCG@10 table, learned systems vs the baselines."""
    lines = [
        "# Evaluation summary",
        "",
        f"Dataset `{report['dataset_version']}`, split `{report['split']}`.",
        "",
        "| gate | status | detail |",
        "|---|---|---|",
        *(f"| {n} | {g['status']} | {g['detail']} |" for n, g in report["gates"].items()),
        "",
        "| system | "
        + " | ".join(f"{TASK_TITLES.get(t, t)} nDCG@10" for t in report["tasks"])
        + " |",
        "|---|" + "---|" * len(report["tasks"]),
    ]
    systems = list(next(iter(report["tasks"].values()))["systems"])
    for name in systems:
        cells = []
        for block in report["tasks"].values():
            value = block["systems"][name]["ndcg@10"]
            best = abs(value - _best(block["systems"], "ndcg@10")) < 1e-12
            cells.append(f"**{value:.3f}**" if best else f"{value:.3f}")
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    lines.append("")
    for task, block in report["tasks"].items():
        baseline = max(block["systems"][b]["ndcg@10"] for b in BASELINES if b in block["systems"])
        learned = {n: v["ndcg@10"] for n, v in block["systems"].items() if n not in BASELINES}
        worst = min(learned, key=learned.get)
        lines.append(
            f"- {TASK_TITLES.get(task, task)}: the weakest learned system (`{worst}`, "
            f"{learned[worst]:.3f}) is {learned[worst] / max(baseline, 1e-12):.2f}x the best "
            f"baseline ({baseline:.3f}); {block['num_queries']} queries."
        )
    return "\n".join(lines) + "\n"
