"""``export``: every artifact of the run → one verified bundle folder, then (with
``export.publish_to``) published to object storage.

The layout is the contract of docs/design.md, "Bundle".
"""

from kedro.pipeline import Node, Pipeline

from .nodes import assemble_bundle, publish_bundle_node

ARTIFACTS = [
    "clips",
    "splits",
    "pairs",
    "triples",
    "dataset_version",
    "oracle_model",
    "oracle_config",
    "oracle_training_metadata",
    "oracle_eval_report",
    "projection_model",
    "projection_config",
    "projection_training_metadata",
    "clip_vectors",
    "clip_ids",
    "track_vectors",
    "track_ids",
    "clip_index",
    "evaluation_report",
    "evaluation_verdict",
    "evaluation_runs",
    "evaluation_qrels",
    "evaluation_html",
    "audit_kit",
]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                assemble_bundle,
                {
                    **{name: name for name in ARTIFACTS},
                    "checks": "params:checks",
                    "params": "params:export",
                    "extraction": "extraction",
                },
                "artifact_bundle",
                name="assemble_bundle_node",
            ),
            Node(
                publish_bundle_node,
                {"bundle": "artifact_bundle", "params": "params:export"},
                None,
                name="publish_bundle_node",
            ),
        ]
    )
