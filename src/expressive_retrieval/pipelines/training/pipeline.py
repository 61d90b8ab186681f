"""``training`` composes the pipelines that run on the four raw entries.

A real package (not only a registry entry) because Kedro imports just the requested
``pipelines/<name>`` packages: ``kedro run --pipelines=training`` must find this folder.
"""

from kedro.pipeline import Pipeline

from expressive_retrieval.pipelines import (
    evaluation,
    export,
    labels_and_splits,
    oracle_scorer,
    projection_retriever,
)

# Everything but synthetic_data; Kedro orders the nodes by their datasets.
STAGES = (labels_and_splits, oracle_scorer, projection_retriever, evaluation, export)


def create_pipeline(**kwargs) -> Pipeline:
    return sum((stage.create_pipeline() for stage in STAGES), Pipeline([]))
