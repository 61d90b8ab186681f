"""Project pipelines."""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

# Composes others: never summed into ``__default__`` a second time.
COMPOSITES = frozenset({"training"})
# Writes raw inputs from recordings: run on its own, before ``training``.
FRONT_ENDS = frozenset({"audio_features"})


def register_pipelines() -> dict[str, Pipeline]:
    """Register every pipeline found under ``pipelines/``.

    ``__default__`` runs them all but ``audio_features``, starting from ``synthetic_data``
    (the embedded default catalogue); ``training`` (its own package) runs all but the two
    pipelines that write raw inputs, for users' own data. Kedro 1.7 imports only the
    packages a run names (``--pipelines=a,b``), so the dictionary holds just those unless
    ``__default__`` (or nothing) is asked for. Kedro orders nodes by their datasets.
    """
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum(
        (
            p
            for name, p in pipelines.items()
            if name not in COMPOSITES | FRONT_ENDS | {"__default__"}
        ),
        Pipeline([]),
    )
    return pipelines
