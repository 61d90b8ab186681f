"""``synthetic_data``: writes the embedded default catalogue into the raw entries."""

from kedro.pipeline import Node, Pipeline

from .nodes import generate_synthetic_catalogue


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                generate_synthetic_catalogue,
                ["params:synthetic_data", "params:aspects"],
                [
                    "tracks",
                    "segments",
                    "proxy_targets",
                    "discovery",
                    "synthetic_latents",
                    "twins",
                    "twin_segments",
                ],
                name="generate_synthetic_catalogue_node",
            )
        ]
    )
