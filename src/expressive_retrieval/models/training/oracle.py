"""Training of the oracle scorer on ranked lists (docs/design.md, "Models").

The oracle's batches and losses for the generic loop of ``training.loop``: listwise ranking
on the default-weight total, aspect regression and proxy prediction.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from expressive_retrieval.models.encoder import as_float_tensor
from expressive_retrieval.models.losses import (
    AspectRegressionLoss,
    ListwiseRankingLoss,
    ProxyPredictionLoss,
)
from expressive_retrieval.models.oracle import OracleScorer
from expressive_retrieval.models.training.loop import (
    ListwiseData,
    LoadClips,
    TrainParams,
    batch_positions,
    fit_lists,
    ndcg_at_10,
)


def _encode_rows(
    model: OracleScorer, load_clips: LoadClips, rows: np.ndarray, batch_size: int = 256
) -> Tensor:
    """Encodings ``[len(rows), K·A, S, H]`` of clip-table rows, loaded in chunks."""
    chunks = [
        model.encode_clips(load_clips(rows[i : i + batch_size]), batch_size)
        for i in range(0, len(rows), batch_size)
    ]
    return torch.cat(chunks)


@torch.no_grad()
def oracle_list_scores(
    model: OracleScorer,
    data: ListwiseData,
    load_clips: LoadClips,
    batch_queries: int = 64,
    aspects: bool = False,
) -> np.ndarray:
    """Total scores ``[Q, C]`` (default weights, float32) of every list; padding scores 0.

    ``aspects=True``: the per-aspect sub-scores ``[Q, C, A]`` instead.
    """
    rows = data.clip_indices()
    enc = _encode_rows(model, load_clips, rows)
    query_pos = np.searchsorted(rows, data.query_index)
    cand_pos = np.searchsorted(rows, np.where(data.valid, data.candidate_index, rows[0]))
    shape = (*data.candidate_index.shape, model.num_aspects) if aspects else data.valid.shape
    scores = np.zeros(shape, dtype=np.float32)
    for i in range(0, len(query_pos), batch_queries):
        block = slice(i, i + batch_queries)
        per_aspect = model.score_encoded(enc[query_pos[block]], enc[cand_pos[block]])
        scores[block] = (per_aspect if aspects else model.combine(per_aspect)).numpy()
    scores[~data.valid] = 0.0
    return scores


def evaluate_ndcg(model: OracleScorer, data: ListwiseData, load_clips: LoadClips) -> float:
    """Validation nDCG@10 of the oracle's default-weight ranking of each list."""
    return ndcg_at_10(oracle_list_scores(model, data, load_clips), data)


def _standardise(features: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Features standardised with NaN-aware mean/std over ``rows`` (std 0 or unknown → 1)."""
    fitted = features[rows].astype(np.float64)
    observed = np.isfinite(fitted)
    counts = observed.sum(axis=0)
    mean = np.where(observed, fitted, 0.0).sum(axis=0) / np.maximum(counts, 1)
    var = np.where(observed, (fitted - mean) ** 2, 0.0).sum(axis=0) / np.maximum(counts, 1)
    std = np.where(var > 0, np.sqrt(var), 1.0)
    return ((features - mean) / std).astype(np.float32)


def fit_oracle(
    model: OracleScorer,
    train: ListwiseData,
    val: ListwiseData,
    load_clips: LoadClips,
    clip_proxy_features: np.ndarray | None,
    params: TrainParams,
    progress: bool = True,
) -> tuple[OracleScorer, list[dict]]:
    """Train the oracle on ranked lists; early-stop on validation nDCG@10.

    First the model's input standardisation is fitted on (a seeded sample of) the training
    clips. Per batch of queries the unique clips of its lists are loaded and encoded once,
    then every list is scored: listwise ranking loss on the default-weight total, aspect
    regression of ``s_a`` on ``targets``, and proxy prediction of each clip's features;
    in an ensemble, every member on its own scores and predictions.

    Args:
        model: the scorer, trained in place.
        train: training lists.
        val: validation lists (at least one relevant candidate).
        load_clips: clip-table rows ``[n]`` → float32 ``[n, S, L, D]``.
        clip_proxy_features: ``[Nclips, sum(num_proxy_features)]`` raw proxy features,
            NaN = missing; standardised here with train-clip statistics. ``None`` = no
            proxy loss.
        params: optimisation settings.
        progress: show a progress bar.

    Returns:
        The model (best epoch restored) and the per-epoch history.
    """
    num_features = sum(model.config.proxy_counts)
    proxies = None
    if clip_proxy_features is not None and num_features:
        if clip_proxy_features.ndim != 2 or clip_proxy_features.shape[1] != num_features:
            raise ValueError(
                f"clip_proxy_features must be [Nclips, {num_features}] (sum of "
                f"num_proxy_features), got {clip_proxy_features.shape}"
            )
        proxies = torch.from_numpy(_standardise(clip_proxy_features, train.clip_indices()))
    ranking_loss, aspect_loss, proxy_loss = (
        ListwiseRankingLoss(params.temperature),
        AspectRegressionLoss(),
        ProxyPredictionLoss(),
    )

    members = model.num_members

    def step(lists: np.ndarray) -> dict[str, Tensor]:
        rows, query_pos, cand_pos = batch_positions(train, lists)
        enc = model.encode(as_float_tensor(load_clips(rows)))
        # Each member's lists stacked member-major: [K·Bq, C(, A)], so every member learns
        # from its own scores, not from the average (the losses average over the members).
        scores, cosine = model.member_outputs(enc[query_pos], enc[cand_pos])
        per_aspect = scores.movedim(2, 0).flatten(0, 1)
        mask = torch.from_numpy(train.valid[lists]).repeat(members, 1)
        relevance = torch.from_numpy(train.relevance[lists]).repeat(members, 1)
        targets = torch.from_numpy(train.targets[lists]).float().repeat(members, 1, 1)
        losses = {
            "ranking": ranking_loss(model.combine(per_aspect), relevance, mask),
            "aspect": aspect_loss(per_aspect, targets, mask),
        }
        if cosine is not None:  # the branch must rank on its own, not only inside the sum
            branch = model.combine(cosine.movedim(2, 0).flatten(0, 1))
            losses["cosine_ranking"] = ranking_loss(branch, relevance, mask)
        losses["proxy"] = (
            proxy_loss(model.member_proxies(enc), proxies[rows, None].expand(-1, members, -1))
            if proxies is not None
            else torch.zeros(())
        )
        return losses

    def list_scores(data: ListwiseData) -> np.ndarray:
        return oracle_list_scores(model, data, load_clips)

    history = fit_lists(
        model, train, val, load_clips, params, step, list_scores, progress, desc="oracle"
    )
    return model, history
