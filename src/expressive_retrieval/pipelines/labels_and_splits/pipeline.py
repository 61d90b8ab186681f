"""``labels_and_splits``: validated clips, leak-safe splits, graded pairs and triples."""

from kedro.pipeline import Node, Pipeline

from .nodes import (
    accept_raw_inputs,
    accept_splits,
    assign_splits_node,
    build_clip_features,
    build_pairs_and_triples,
    check_raw_inputs_node,
    check_split_sizes,
    dataset_version,
    frozen_clip_vectors,
    layer_evidence,
    make_clips,
    publish_labels,
    validate_labels,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                check_raw_inputs_node,
                [
                    "tracks",
                    "segments",
                    "proxy_targets",
                    "discovery",
                    "params:aspects",
                    "params:raw_files",
                ],
                "raw_inputs_validation",
                name="check_raw_inputs_node",
            ),
            Node(
                accept_raw_inputs,
                "raw_inputs_validation",
                "raw_layout",
                name="accept_raw_inputs_node",
            ),
            Node(
                assign_splits_node,
                [
                    "tracks",
                    "previous_splits",
                    "raw_layout",
                    "params:labels_and_splits",
                    "params:seed",
                ],
                "drawn_splits",
                name="assign_splits_node",
            ),
            Node(
                check_split_sizes,
                ["drawn_splits", "tracks", "params:labels_and_splits"],
                "splits_validation",
                name="check_split_sizes_node",
            ),
            Node(
                accept_splits,
                ["splits_validation", "drawn_splits"],
                "candidate_splits",
                name="accept_splits_node",
            ),
            Node(
                make_clips,
                ["candidate_splits", "raw_layout", "params:labels_and_splits"],
                "candidate_clips",
                name="make_clips_node",
            ),
            Node(
                build_clip_features,
                ["proxy_targets", "candidate_clips", "params:aspects", "params:labels_and_splits"],
                ["candidate_clip_aspect_features", "relevance_model"],
                name="build_clip_features_node",
            ),
            Node(
                frozen_clip_vectors,
                ["segments", "candidate_clips", "raw_layout"],
                "frozen_clip_vectors",
                name="frozen_clip_vectors_node",
            ),
            Node(
                build_pairs_and_triples,
                [
                    "candidate_clips",
                    "candidate_clip_aspect_features",
                    "relevance_model",
                    "frozen_clip_vectors",
                    "params:labels_and_splits",
                    "params:seed",
                    "params:scale",
                ],
                ["candidate_pairs", "candidate_triples"],
                name="build_pairs_and_triples_node",
            ),
            Node(
                validate_labels,
                [
                    "candidate_clips",
                    "candidate_splits",
                    "candidate_pairs",
                    "candidate_triples",
                    "tracks",
                    "params:aspects",
                    "params:labels_and_splits",
                ],
                "labels_validation",
                name="validate_labels_node",
            ),
            Node(
                publish_labels,
                [
                    "labels_validation",
                    "candidate_clips",
                    "candidate_splits",
                    "candidate_pairs",
                    "candidate_triples",
                    "candidate_clip_aspect_features",
                ],
                ["clips", "splits", "pairs", "triples", "clip_aspect_features"],
                name="publish_labels_node",
            ),
            Node(
                layer_evidence,
                [
                    "discovery",
                    "segments",
                    "clips",
                    "clip_aspect_features",
                    "relevance_model",
                    "params:labels_and_splits",
                    "params:seed",
                ],
                "layer_evidence",
                name="layer_evidence_node",
            ),
            Node(
                dataset_version,
                [
                    "tracks",
                    "segments",
                    "proxy_targets",
                    "discovery",
                    "clips",
                    "splits",
                    "pairs",
                    "triples",
                    "clip_aspect_features",
                    "layer_evidence",
                    "relevance_model",
                    "raw_layout",
                    "params:aspects",
                    "params:labels_and_splits",
                ],
                "dataset_version",
                name="dataset_version_node",
            ),
        ]
    )
