"""Torch models of expressive similarity: layer routing, the oracle scorer, losses, training."""

from expressive_retrieval.models.encoder import EncoderConfig, SegmentEncoder, segment_statistics
from expressive_retrieval.models.losses import (
    AspectRegressionLoss,
    DistillationLoss,
    ListwiseRankingLoss,
    ProxyPredictionLoss,
    RoutingPriorLoss,
)
from expressive_retrieval.models.oracle import OracleConfig, OracleScorer
from expressive_retrieval.models.projection import ProjectionConfig, ProjectionHead
from expressive_retrieval.models.routing import AspectLinear, LayerRouting
from expressive_retrieval.models.serialization import state_dict_for_safetensors
from expressive_retrieval.models.training import (
    ListwiseData,
    ProjectionTrainParams,
    TeacherScores,
    TrainParams,
    evaluate_ndcg,
    fit_oracle,
    fit_projection,
    input_statistics,
    oracle_list_scores,
    projection_list_scores,
    run_epochs,
)

__all__ = [
    "AspectLinear",
    "AspectRegressionLoss",
    "DistillationLoss",
    "EncoderConfig",
    "LayerRouting",
    "ListwiseData",
    "ListwiseRankingLoss",
    "OracleConfig",
    "OracleScorer",
    "ProjectionConfig",
    "ProjectionHead",
    "ProjectionTrainParams",
    "ProxyPredictionLoss",
    "RoutingPriorLoss",
    "SegmentEncoder",
    "TeacherScores",
    "TrainParams",
    "evaluate_ndcg",
    "fit_oracle",
    "fit_projection",
    "input_statistics",
    "oracle_list_scores",
    "projection_list_scores",
    "run_epochs",
    "segment_statistics",
    "state_dict_for_safetensors",
]
