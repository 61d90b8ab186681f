"""Figures of the evaluation report, drawn from the report JSON alone (matplotlib, Agg).

Each function takes the ``evaluation_report`` dict and returns one ``Figure``; the
pipeline saves them as catalog datasets (kedro-viz previews them) and embeds them in
``report.html`` as base64 PNG.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

TASK_TITLES = {"clip_to_clip": "clip → clip", "clip_to_track": "clip → track"}


def ranking_plot(
    report: dict[str, Any], metrics: tuple[str, ...] = ("ndcg@10", "mrr", "recall@10")
) -> Figure:
    """Grouped bars with 95% intervals as error bars: every system per metric, one panel per task.

    Metrics a task does not report (a Recall@K past its candidates) are left out.
    """
    tasks = list(report["tasks"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        systems = report["tasks"][task]["systems"]
        names = list(systems)
        shown = [m for m in metrics if m in systems[names[0]]]
        width = 0.8 / len(names)
        x = np.arange(len(shown))
        for i, name in enumerate(names):
            values = np.array([systems[name][m] for m in shown])
            bounds = report["intervals"][task][name]
            errors = np.array(
                [
                    [v - bounds[m]["low"] for m, v in zip(shown, values, strict=True)],
                    [bounds[m]["high"] - v for m, v in zip(shown, values, strict=True)],
                ]
            )
            ax.bar(
                x + (i - (len(names) - 1) / 2) * width,
                values,
                width,
                yerr=np.maximum(errors, 0.0),
                capsize=2,
                label=name,
            )
        ax.set_xticks(x, shown)
        ax.set_ylim(0, 1)
        ax.set_title(
            f"{TASK_TITLES.get(task, task)} ({report['tasks'][task]['num_queries']} queries)"
        )
        ax.grid(axis="y", alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def faithfulness_plot(report: dict[str, Any]) -> Figure:
    """One heat map per system: aspect sub-score (rows) × aspect target (columns), Spearman."""
    systems = list(report["aspect_faithfulness"])
    panels = max(len(systems), 1)
    fig, axes = plt.subplots(
        1, panels, figsize=(3.4 * panels + 1, 3.8), squeeze=False, layout="constrained"
    )
    image = None
    for ax, name in zip(axes[0], systems, strict=False):
        matrix = report["aspect_faithfulness"][name]["matrix"]
        aspects = list(matrix)
        values = np.array([[matrix[s][t] for t in aspects] for s in aspects])
        image = ax.imshow(values, vmin=-1, vmax=1, cmap="RdBu_r")
        ax.set_xticks(range(len(aspects)), aspects, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(aspects)), aspects if ax is axes[0][0] else [], fontsize=7)
        for i in range(len(aspects)):
            for j in range(len(aspects)):
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=6)
        passed = report["aspect_faithfulness"][name]["passed"]
        ax.set_title(f"{name} ({'passes' if passed else 'fails'})", fontsize=9)
        ax.set_xlabel("target aspect", fontsize=7)
    axes[0][0].set_ylabel("sub-score aspect", fontsize=7)
    if image is not None:
        fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="Spearman")
    return fig


def selectivity_plot(report: dict[str, Any]) -> Figure:
    """One heat map per system: moved aspect (rows) × sub-score aspect (columns).

    Each cell is the mean |change| of the column's sub-score on the row's twins; colours
    are relative to the column's largest cell, so a selective model shows a bright diagonal.
    """
    selectivity = report["aspect_selectivity"]
    systems = list(selectivity["systems"])
    panels = max(len(systems), 1)
    fig, axes = plt.subplots(
        1, panels, figsize=(3.4 * panels + 1, 3.8), squeeze=False, layout="constrained"
    )
    if not systems:
        axes[0][0].axis("off")
        axes[0][0].text(
            0.5, 0.5, f"not applicable: {selectivity['detail']}", ha="center", wrap=True
        )
        return fig
    image = None
    for ax, name in zip(axes[0], systems, strict=True):
        matrix = selectivity["systems"][name]["matrix"]
        aspects = list(matrix)
        values = np.array([[matrix[m][a] for a in aspects] for m in aspects])
        relative = values / np.maximum(values.max(axis=0, keepdims=True), 1e-12)
        image = ax.imshow(relative, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(aspects)), aspects, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(aspects)), aspects if ax is axes[0][0] else [], fontsize=7)
        for i in range(len(aspects)):
            for j in range(len(aspects)):
                color = "black" if relative[i, j] > 0.6 else "white"
                ax.text(
                    j, i, f"{values[i, j]:.3f}", ha="center", va="center", fontsize=6, color=color
                )
        passed = selectivity["systems"][name]["passed"]
        ax.set_title(f"{name} ({'passes' if passed else 'fails'})", fontsize=9)
        ax.set_xlabel("sub-score aspect", fontsize=7)
    axes[0][0].set_ylabel("moved aspect (twins)", fontsize=7)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="share of the column's largest")
    return fig


def counterfactual_plot(report: dict[str, Any]) -> Figure:
    """Share of queries moved towards an aspect against the weight boost, per system."""
    curves = {k: v for k, v in report["counterfactual_curves"].items() if k != "boosts"}
    boosts = report["counterfactual_curves"]["boosts"]
    fig, axes = plt.subplots(
        1, max(len(curves), 1), figsize=(3.6 * max(len(curves), 1), 3.4), squeeze=False, sharey=True
    )
    for ax, (name, per_aspect) in zip(axes[0], curves.items(), strict=False):
        for aspect, shares in per_aspect.items():
            ax.plot(boosts, shares, marker="o", label=aspect)
        ax.set_xscale("log", base=2)
        ax.set_ylim(0, 1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("weight boost (× Σw)", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("share of queries moved", fontsize=8)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def training_plot(report: dict[str, Any]) -> Figure:
    """Training loss and validation nDCG@10 per epoch of the oracle and the projections."""
    fig, (loss_ax, ndcg_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, curve in report["training_curves"].items():
        if not curve["epochs"]:
            continue
        loss_ax.plot(curve["epochs"], curve["loss"], marker=".", label=name)
        (line,) = ndcg_ax.plot(curve["epochs"], curve["val_ndcg@10"], marker=".", label=name)
        if curve.get("best_epoch"):
            best = curve["epochs"].index(curve["best_epoch"])
            ndcg_ax.scatter(
                [curve["best_epoch"]],
                [curve["val_ndcg@10"][best]],
                marker="*",
                s=120,
                zorder=3,
                color=line.get_color(),
            )
    loss_ax.set_title("training loss", fontsize=9)
    ndcg_ax.set_title("validation nDCG@10 (★ = kept epoch)", fontsize=9)
    for ax in (loss_ax, ndcg_ax):
        ax.set_xlabel("epoch", fontsize=8)
        ax.grid(alpha=0.3)
    ndcg_ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def png_base64(fig: Figure, dpi: int = 110) -> str:
    """The figure as a base64 PNG, for a ``data:`` URI."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
