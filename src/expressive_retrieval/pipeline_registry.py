"""Project pipelines."""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    """Register every pipeline found under ``pipelines/``.

    ``__default__`` runs them all, starting from ``synthetic_data`` (the embedded
    default catalogue); ``training`` runs all but ``synthetic_data``, for users' own data.
    Kedro orders nodes by their datasets, so the sums run in data-flow order.
    """
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum(pipelines.values(), Pipeline([]))
    pipelines["training"] = sum(
        (p for name, p in pipelines.items() if name not in {"synthetic_data", "__default__"}),
        Pipeline([]),
    )
    return pipelines
