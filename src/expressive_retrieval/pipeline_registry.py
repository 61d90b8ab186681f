"""Project pipelines."""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    """Register every pipeline found under ``pipelines/``.

    ``__default__`` runs them all but ``audio_features``, starting from ``synthetic_data``
    (the embedded default catalogue); ``training`` runs all but the two pipelines that
    write raw inputs (``synthetic_data``, ``audio_features``), for users' own data.
    Kedro orders nodes by their datasets, so the sums run in data-flow order.
    """
    pipelines = find_pipelines(raise_errors=True)
    found = dict(pipelines)
    pipelines["__default__"] = sum(
        (p for name, p in found.items() if name != "audio_features"), Pipeline([])
    )
    pipelines["training"] = sum(
        (p for name, p in found.items() if name not in {"synthetic_data", "audio_features"}),
        Pipeline([]),
    )
    return pipelines
