"""Training objectives of the expressive models, one per file."""

from expressive_retrieval.models.losses.aspect_regression_loss import AspectRegressionLoss
from expressive_retrieval.models.losses.distillation_loss import DistillationLoss
from expressive_retrieval.models.losses.listwise_ranking_loss import ListwiseRankingLoss
from expressive_retrieval.models.losses.proxy_prediction_loss import ProxyPredictionLoss
from expressive_retrieval.models.losses.routing_prior_loss import RoutingPriorLoss

__all__ = [
    "AspectRegressionLoss",
    "DistillationLoss",
    "ListwiseRankingLoss",
    "ProxyPredictionLoss",
    "RoutingPriorLoss",
]
