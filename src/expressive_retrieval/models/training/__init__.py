"""Deterministic training on ranked lists: the generic loop, the oracle's and the retriever's."""

from expressive_retrieval.models.training.loop import (
    ListwiseData,
    LoadClips,
    TrainParams,
    deterministic,
    input_statistics,
    listwise_data,
    ndcg_at_10,
    run_epochs,
)
from expressive_retrieval.models.training.oracle import (
    evaluate_ndcg,
    fit_oracle,
    oracle_list_scores,
)
from expressive_retrieval.models.training.pool import candidate_pool
from expressive_retrieval.models.training.projection import (
    ProjectionTrainParams,
    TeacherScores,
    fit_projection,
    projection_list_scores,
)

__all__ = [
    "ListwiseData",
    "LoadClips",
    "ProjectionTrainParams",
    "TeacherScores",
    "TrainParams",
    "candidate_pool",
    "deterministic",
    "evaluate_ndcg",
    "fit_oracle",
    "fit_projection",
    "input_statistics",
    "listwise_data",
    "ndcg_at_10",
    "oracle_list_scores",
    "projection_list_scores",
    "run_epochs",
]
