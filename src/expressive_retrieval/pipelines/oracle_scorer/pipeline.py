"""``oracle_scorer``: train → evaluate (report saved) → gate → publish the weights."""

from kedro.pipeline import Node, Pipeline

from .nodes import evaluate_oracle, publish_oracle, train_oracle


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                train_oracle,
                [
                    "segments",
                    "clips",
                    "pairs",
                    "clip_aspect_features",
                    "layer_evidence",
                    "dataset_version",
                    "params:oracle_scorer",
                    "params:seed",
                ],
                [
                    "candidate_oracle_model",
                    "candidate_oracle_config",
                    "candidate_oracle_training_metadata",
                ],
                name="train_oracle_node",
            ),
            Node(
                evaluate_oracle,
                [
                    "candidate_oracle_model",
                    "candidate_oracle_config",
                    "segments",
                    "clips",
                    "splits",
                    "clip_aspect_features",
                    "dataset_version",
                    "params:oracle_scorer",
                    "params:checks",
                ],
                "oracle_eval_report",
                name="evaluate_oracle_node",
            ),
            Node(
                publish_oracle,
                [
                    "oracle_eval_report",
                    "candidate_oracle_model",
                    "candidate_oracle_config",
                    "candidate_oracle_training_metadata",
                    "params:oracle_scorer",
                ],
                ["oracle_model", "oracle_config", "oracle_training_metadata"],
                name="publish_oracle_node",
            ),
        ]
    )
