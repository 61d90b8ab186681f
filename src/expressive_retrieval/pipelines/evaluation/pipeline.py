"""``evaluation``: cheap systems → pool (large splits) → oracle and every system's scores,
the twins → measure → TREC export, audit kit → report → gates."""

from kedro.pipeline import Node, Pipeline

from .audit import ingest_audit_judgements, make_audit_kit
from .nodes import evaluation_view, export_trec, measure_systems
from .reporting import assemble_report, enforce_gates, plot_report, render_report
from .scoring import (
    pool_view,
    score_frozen_baselines,
    score_oracle,
    score_projections,
    score_systems,
)
from .selectivity import score_selectivity

SCORES = ["system_scores", "oracle_system_scores"]
SCORERS = ["frozen_scorers", "projection_scorers"]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                evaluation_view,
                [
                    "clips",
                    "clip_aspect_features",
                    "dataset_version",
                    "splits",
                    "params:evaluation",
                    "params:checks",
                ],
                "evaluation_split_view",
                name="evaluation_view_node",
            ),
            Node(
                score_frozen_baselines,
                [
                    "segments",
                    "clips",
                    "layer_evidence",
                    "evaluation_split_view",
                    "params:evaluation",
                ],
                "frozen_scorers",
                name="score_frozen_baselines_node",
            ),
            Node(
                score_oracle,
                [
                    "oracle_model",
                    "oracle_config",
                    "segments",
                    "clips",
                    "evaluation_view",
                    "params:evaluation",
                ],
                "oracle_system_scores",
                name="score_oracle_node",
            ),
            Node(
                score_projections,
                [
                    "projection_config",
                    "clip_vectors",
                    "clip_ids",
                    "projection_ablation_model",
                    "projection_ablation_config",
                    "clip_index",
                    "segments",
                    "clips",
                    "evaluation_split_view",
                    "params:evaluation",
                    "params:projection_retriever.index",
                ],
                "projection_scorers",
                name="score_projections_node",
            ),
            Node(
                score_selectivity,
                [
                    "twins",
                    "twin_segments",
                    "oracle_model",
                    "oracle_config",
                    "projection_model",
                    "projection_config",
                    "projection_ablation_model",
                    "projection_ablation_config",
                    "segments",
                    "clips",
                    "evaluation_split_view",
                    "params:evaluation",
                    "params:checks",
                ],
                "selectivity_measurements",
                name="score_selectivity_node",
            ),
            Node(
                pool_view,
                ["evaluation_split_view", *SCORERS, "params:evaluation", "params:checks"],
                "evaluation_view",
                name="pool_view_node",
            ),
            Node(
                score_systems,
                ["evaluation_view", *SCORERS, "params:checks"],
                "system_scores",
                name="score_systems_node",
            ),
            Node(
                measure_systems,
                ["evaluation_view", *SCORES, "params:evaluation", "params:checks"],
                ["evaluation_measurements", "evaluation_per_query"],
                name="measure_systems_node",
            ),
            Node(
                export_trec,
                ["evaluation_view", *SCORES, "params:evaluation"],
                ["evaluation_runs", "evaluation_qrels", "evaluation_trec_summary"],
                name="export_trec_node",
            ),
            Node(
                make_audit_kit,
                [
                    "evaluation_view",
                    *SCORES,
                    "evaluation_per_query",
                    "clips",
                    "tracks",
                    "segments",
                    "dataset_version",
                    "params:evaluation",
                ],
                ["audit_kit", "audit_key", "audit_kit_summary"],
                name="make_audit_kit_node",
            ),
            Node(
                ingest_audit_judgements,
                ["audit_judgements", "audit_key", "evaluation_view", *SCORES, "params:evaluation"],
                "human_audit_results",
                name="ingest_audit_judgements_node",
            ),
            Node(
                assemble_report,
                [
                    "dataset_version",
                    "evaluation_measurements",
                    "selectivity_measurements",
                    "evaluation_trec_summary",
                    "audit_kit_summary",
                    "human_audit_results",
                    "oracle_training_metadata",
                    "projection_training_metadata",
                    "projection_ablation_training_metadata",
                    "params:evaluation",
                    "params:checks",
                ],
                "evaluation_report",
                name="assemble_report_node",
            ),
            Node(
                plot_report,
                "evaluation_report",
                [
                    "evaluation_ranking_plot",
                    "evaluation_faithfulness_plot",
                    "evaluation_counterfactual_plot",
                    "evaluation_selectivity_plot",
                    "evaluation_training_plot",
                    "evaluation_plot_images",
                ],
                name="plot_report_node",
            ),
            Node(
                render_report,
                ["evaluation_report", "evaluation_plot_images"],
                "evaluation_html",
                name="render_report_node",
            ),
            Node(
                enforce_gates,
                ["evaluation_report", "evaluation_html", "params:evaluation"],
                "evaluation_verdict",
                name="enforce_gates_node",
            ),
        ]
    )
