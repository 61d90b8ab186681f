"""``audio_features``: embeds and measures recordings into the raw entries (optional front end)."""

from kedro.pipeline import Node, Pipeline

from .nodes import extract_audio_features


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                extract_audio_features,
                ["recordings", "params:audio_features", "params:scale"],
                ["tracks", "segments", "proxy_targets", "discovery", "extraction"],
                name="extract_audio_features_node",
            )
        ]
    )
