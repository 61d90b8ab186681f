"""Torch models of expressive similarity: layer routing, the oracle scorer, losses, training."""

from expressive_retrieval.models.losses import (
    AspectRegressionLoss,
    ListwiseRankingLoss,
    ProxyPredictionLoss,
)
from expressive_retrieval.models.oracle import OracleConfig, OracleScorer, segment_statistics
from expressive_retrieval.models.routing import AspectLinear, LayerRouting
from expressive_retrieval.models.serialization import state_dict_for_safetensors
from expressive_retrieval.models.training import (
    ListwiseData,
    TrainParams,
    evaluate_ndcg,
    fit_oracle,
    input_statistics,
    oracle_list_scores,
    run_epochs,
)

__all__ = [
    "AspectLinear",
    "AspectRegressionLoss",
    "LayerRouting",
    "ListwiseData",
    "ListwiseRankingLoss",
    "OracleConfig",
    "OracleScorer",
    "ProxyPredictionLoss",
    "TrainParams",
    "evaluate_ndcg",
    "fit_oracle",
    "input_statistics",
    "oracle_list_scores",
    "run_epochs",
    "segment_statistics",
    "state_dict_for_safetensors",
]
