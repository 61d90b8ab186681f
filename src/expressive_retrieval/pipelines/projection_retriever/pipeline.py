"""``projection_retriever``: teacher scores → distilled head (+ ablation) → corpus → index."""

from kedro.pipeline import Node, Pipeline

from .nodes import (
    build_clip_index,
    make_track_vectors,
    oracle_teacher_scores,
    project_corpus,
    train_distilled_projection,
    train_projection_ablation,
)

TRAINING_INPUTS = ["segments", "clips", "pairs", "layer_evidence", "dataset_version"]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                oracle_teacher_scores,
                [
                    "oracle_model",
                    "oracle_config",
                    "segments",
                    "clips",
                    "pairs",
                    "params:projection_retriever",
                    "params:seed",
                ],
                "oracle_teacher_scores",
                name="oracle_teacher_scores_node",
            ),
            Node(
                train_distilled_projection,
                [
                    *TRAINING_INPUTS,
                    "oracle_teacher_scores",
                    "params:projection_retriever",
                    "params:seed",
                ],
                ["projection_model", "projection_config", "projection_training_metadata"],
                name="train_distilled_projection_node",
            ),
            Node(
                train_projection_ablation,
                [*TRAINING_INPUTS, "params:projection_retriever", "params:seed"],
                [
                    "projection_ablation_model",
                    "projection_ablation_config",
                    "projection_ablation_training_metadata",
                ],
                name="train_projection_ablation_node",
            ),
            Node(
                project_corpus,
                [
                    "projection_model",
                    "projection_config",
                    "segments",
                    "clips",
                    "params:projection_retriever",
                    "params:scale",
                ],
                ["clip_vectors", "clip_ids"],
                name="project_corpus_node",
            ),
            Node(
                make_track_vectors,
                ["clip_vectors", "clip_ids", "projection_config"],
                ["track_vectors", "track_ids"],
                name="make_track_vectors_node",
            ),
            Node(
                build_clip_index,
                ["clip_vectors", "clip_ids", "params:projection_retriever"],
                "clip_index",
                name="build_clip_index_node",
            ),
        ]
    )
