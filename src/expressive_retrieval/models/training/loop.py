"""Deterministic CPU training on ranked lists (docs/design.md, "Models"): the generic loop.

``run_epochs`` does seeding, optimiser, early stopping on validation nDCG@10, progress,
per-epoch logging and history; ``fit_lists`` is the template around it that
``training.oracle`` and ``training.projection`` fill in with their model's batch step and
list scores. The list helpers here serve both.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from expressive_retrieval.evaluation.metrics import ranking_metrics
from expressive_retrieval.models.encoder import SegmentEncoder

logger = logging.getLogger(__name__)

LoadClips = Callable[[np.ndarray], np.ndarray]
"""``indices [n]`` → float16/32 clips ``[n, S, L, D]`` (rows of the clip table)."""


@dataclass
class ListwiseData:
    """One ranked list per query, built from the ``pairs`` label table.

    Attributes:
        query_index: ``[Q]`` int, row of the query in the clip table.
        candidate_index: ``[Q, C]`` int, candidate rows; -1 = padding.
        relevance: ``[Q, C]`` graded relevance 0..3.
        targets: ``[Q, C, A]`` per-aspect target similarities in [0, 1].
    """

    query_index: np.ndarray
    candidate_index: np.ndarray
    relevance: np.ndarray
    targets: np.ndarray

    def __post_init__(self) -> None:
        q = len(self.query_index)
        c = self.candidate_index.shape[1] if self.candidate_index.ndim == 2 else -1
        if self.query_index.ndim != 1 or self.candidate_index.shape != (q, c) or c < 1:
            raise ValueError(
                f"query_index must be [Q] and candidate_index [Q, C], got "
                f"{self.query_index.shape} and {self.candidate_index.shape}"
            )
        if (
            self.relevance.shape != (q, c)
            or self.targets.ndim != 3
            or self.targets.shape[:2] != (q, c)
        ):
            raise ValueError(
                f"relevance must be [Q, C]={(q, c)} and targets [Q, C, A], got "
                f"{self.relevance.shape} and {self.targets.shape}"
            )

    @property
    def valid(self) -> np.ndarray:
        """``[Q, C]`` bool, False for padding."""
        return self.candidate_index >= 0

    def clip_indices(self) -> np.ndarray:
        """Sorted unique clip rows used by the lists (queries and candidates)."""
        return np.unique(np.concatenate([self.query_index, self.candidate_index[self.valid]]))


def listwise_data(
    pairs: pd.DataFrame, clips: pd.DataFrame, aspects: list[str], split: str
) -> ListwiseData:
    """Lists of ``split`` from the ``pairs`` table, in row numbers of the ``clips`` table."""
    rows = pd.Series(np.arange(len(clips)), index=clips["clip_id"])
    subset = pairs[pairs["split"] == split]
    queries = subset["query_clip_id"].map(rows).to_numpy()
    order = np.argsort(queries, kind="stable")
    queries, subset = queries[order], subset.iloc[order]
    unique, starts, counts = np.unique(queries, return_index=True, return_counts=True)
    width = int(counts.max())
    position = np.arange(len(subset)) - np.repeat(starts, counts)
    list_of = np.repeat(np.arange(len(unique)), counts)
    candidate = np.full((len(unique), width), -1, dtype=np.int64)
    relevance = np.zeros((len(unique), width), dtype=np.float32)
    targets = np.zeros((len(unique), width, len(aspects)), dtype=np.float32)
    candidate[list_of, position] = subset["candidate_clip_id"].map(rows).to_numpy()
    relevance[list_of, position] = subset["relevance"].to_numpy()
    targets[list_of, position] = subset[[f"target_{a}" for a in aspects]].to_numpy()
    return ListwiseData(unique.astype(np.int64), candidate, relevance, targets)


@dataclass
class TrainParams:
    """Optimisation settings (the ``oracle`` parameters' ``train`` block).

    ``loss_weights`` multiply the named losses in the total; ``patience`` epochs without a
    better validation nDCG@10 stop training, counted only from ``start_from_epoch`` (as
    Keras' ``EarlyStopping``: the epochs before it are a warm-up, never kept as the best
    and never a reason to stop); ``num_threads`` sets torch's CPU threads;
    ``normalization_clips`` training clips (a seeded sample) fit the input standardisation;
    ``temperature`` divides list scores in the listwise ranking loss.
    """

    epochs: int = 30
    batch_queries: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    loss_weights: dict[str, float] = field(
        default_factory=lambda: {"ranking": 1.0, "aspect": 1.0, "proxy": 0.2, "cosine_ranking": 1.0}
    )
    patience: int = 5
    start_from_epoch: int = 0
    seed: int = 0
    num_threads: int | None = None
    grad_clip: float | None = 1.0
    normalization_clips: int = 1024
    temperature: float = 0.1


@contextlib.contextmanager
def deterministic(seed: int, num_threads: int | None = None) -> Iterator[None]:
    """Seed torch, force deterministic algorithms and fix threads; restore all on exit."""
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    previous_threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(previous_deterministic)
            torch.set_num_threads(previous_threads)


def ndcg_at_10(scores: np.ndarray, data: ListwiseData) -> float:
    """Mean nDCG@10 of ranking each list by ``scores [Q, C]`` (trec_eval definitions)."""
    valid = data.valid
    grades = np.where(valid, np.rint(data.relevance), 0).astype(np.int64)
    ids = [str(i) for i in range(valid.shape[1])]
    return float(ranking_metrics(np.where(valid, scores, 0.0), grades, ids, valid)["ndcg@10"])


def run_epochs(
    model: nn.Module,
    params: TrainParams,
    batches: Callable[[np.random.Generator], Iterator[object]],
    step: Callable[[object], dict[str, Tensor]],
    validate: Callable[[], float],
    progress: bool = True,
    desc: str = "training",
) -> list[dict]:
    """Train ``model`` in place with AdamW and early stopping; restore the best epoch's state.

    Args:
        model: the module whose parameters are optimised.
        params: settings; ``params.loss_weights`` names every loss ``step`` returns.
        batches: yields an epoch's batches from the run's seeded generator.
        step: batch → named scalar losses (with gradients).
        validate: validation nDCG@10 of the current model (higher is better).
        progress: show a progress bar over epochs.
        desc: label of the bar and log lines.

    Returns:
        Per-epoch dicts ``{epoch, loss, loss_<name>..., val_ndcg@10, seconds, restored}``
        (``restored``: the epoch whose state the model ends with).
    """
    history: list[dict] = []
    with deterministic(params.seed, params.num_threads):
        rng = np.random.default_rng(params.seed)
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=params.lr, weight_decay=params.weight_decay
        )
        # The untrained model is reported but never kept: the result is always a trained epoch.
        logger.info("%s: initial val nDCG@10 %.4f", desc, validate())
        best_score, best_epoch = -np.inf, 0
        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        # Log lines go through tqdm.write so they never break the progress bar.
        with logging_redirect_tqdm():
            bar = tqdm(range(1, params.epochs + 1), desc=desc, disable=not progress)
            for epoch in bar:
                start = time.perf_counter()
                model.train()
                sums: dict[str, float] = {}
                num_batches = 0
                for batch in batches(rng):
                    losses = step(batch)
                    unknown = set(losses) - set(params.loss_weights)
                    if unknown:
                        raise ValueError(f"no loss weight for {sorted(unknown)} in loss_weights")
                    total = sum(params.loss_weights[name] * value for name, value in losses.items())
                    optimizer.zero_grad(set_to_none=True)
                    total.backward()
                    if params.grad_clip is not None:
                        nn.utils.clip_grad_norm_(model.parameters(), params.grad_clip)
                    optimizer.step()
                    for name, value in {"loss": total, **losses}.items():
                        key = name if name == "loss" else f"loss_{name}"
                        sums[key] = sums.get(key, 0.0) + value.item()
                    num_batches += 1
                model.eval()
                score = validate()
                record = {"epoch": epoch} | {k: v / max(num_batches, 1) for k, v in sums.items()}
                record |= {"val_ndcg@10": score, "seconds": time.perf_counter() - start}
                history.append(record)
                logger.info(
                    "%s epoch %d: %s, val nDCG@10 %.4f (%.1fs)",
                    desc,
                    epoch,
                    ", ".join(f"{k} {v:.4f}" for k, v in record.items() if k.startswith("loss")),
                    score,
                    record["seconds"],
                )
                bar.set_postfix(loss=f"{record.get('loss', float('nan')):.4f}", ndcg=f"{score:.4f}")
                if epoch < min(params.start_from_epoch, params.epochs):
                    continue  # warm-up (the last epoch always counts)
                if score > best_score:
                    best_score, best_epoch = score, epoch
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                elif epoch - best_epoch >= params.patience:
                    logger.info("%s: no improvement for %d epochs, stopping", desc, params.patience)
                    break
            bar.close()
        model.load_state_dict(best_state)
        model.eval()
    for record in history:
        record["restored"] = record["epoch"] == best_epoch
    logger.info("%s: restored epoch %d (val nDCG@10 %.4f)", desc, best_epoch, best_score)
    return history


def input_statistics(
    load_clips: LoadClips, rows: np.ndarray, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Per-(layer, dim) mean and std ``[L, D]`` over every segment of the clips ``rows``.

    Streams ``batch_size`` clips at a time (float64 sums), so memory does not grow with
    ``len(rows)``.
    """
    total = total_sq = None
    count = 0
    for i in range(0, len(rows), batch_size):
        x = np.asarray(load_clips(rows[i : i + batch_size]), dtype=np.float64)
        x = x.reshape(-1, *x.shape[-2:])  # [n * S, L, D]
        total = x.sum(axis=0) if total is None else total + x.sum(axis=0)
        total_sq = (x**2).sum(axis=0) if total_sq is None else total_sq + (x**2).sum(axis=0)
        count += len(x)
    if total is None:
        raise ValueError("input_statistics needs at least one clip")
    mean = total / count
    return mean, np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))


def sample_input_statistics(
    load_clips: LoadClips, rows: np.ndarray, params: TrainParams
) -> tuple[np.ndarray, np.ndarray]:
    """``input_statistics`` of a seeded sample of ``params.normalization_clips`` of ``rows``."""
    sample_size = min(len(rows), params.normalization_clips)
    sample = np.sort(np.random.default_rng(params.seed).choice(rows, sample_size, False))
    return input_statistics(load_clips, sample)


def check_lists(train: ListwiseData, val: ListwiseData, num_aspects: int) -> None:
    """Refuse targets without ``num_aspects`` aspects, or validation lists without a positive."""
    for name, data in (("train", train), ("val", val)):
        if data.targets.shape[2] != num_aspects:
            raise ValueError(
                f"{name} targets have {data.targets.shape[2]} aspects, model {num_aspects}"
            )
    if not (val.relevance[val.valid] >= 1).any():
        raise ValueError("validation lists have no relevant candidate: nDCG@10 is undefined")


def list_batches(
    num_lists: int, batch_queries: int
) -> Callable[[np.random.Generator], Iterator[np.ndarray]]:
    """``run_epochs`` batches: each epoch, a permutation of the list indices in chunks."""

    def batches(rng: np.random.Generator) -> Iterator[np.ndarray]:
        order = rng.permutation(num_lists)
        for i in range(0, num_lists, batch_queries):
            yield order[i : i + batch_queries]

    return batches


def batch_positions(
    data: ListwiseData, lists: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The clips of a batch of lists, so that each is loaded and encoded once.

    Returns:
        Sorted unique clip rows ``[R]`` of the lists ``lists [Bq]`` (queries and valid
        candidates), and the positions in them of the queries ``[Bq]`` and of the
        candidates ``[Bq, C]`` (padding → 0; mask it with ``data.valid[lists]``).
    """
    queries, cands = data.query_index[lists], data.candidate_index[lists]
    valid = cands >= 0
    rows, inverse = np.unique(np.concatenate([queries, cands[valid]]), return_inverse=True)
    cand_pos = np.zeros_like(cands)
    cand_pos[valid] = inverse[len(queries) :]
    return rows, inverse[: len(queries)], cand_pos


def fit_lists(
    model: SegmentEncoder,
    train: ListwiseData,
    val: ListwiseData,
    load_clips: LoadClips,
    params: TrainParams,
    step: Callable[[np.ndarray], dict[str, Tensor]],
    list_scores: Callable[[ListwiseData], np.ndarray],
    progress: bool = True,
    desc: str = "training",
) -> list[dict]:
    """The template both trainers fill in with their ``step`` and ``list_scores``.

    Checks the lists, fits the model's input standardisation on a seeded sample of the
    training clips, then runs ``run_epochs`` over batches of lists, early-stopping on the
    validation nDCG@10 of ``list_scores(val)`` (``[Q, C]`` scores of each list).

    Returns:
        The per-epoch history; the model is trained in place (best epoch restored).
    """
    check_lists(train, val, model.num_aspects)
    model.set_input_statistics(*sample_input_statistics(load_clips, train.clip_indices(), params))
    return run_epochs(
        model,
        params,
        list_batches(len(train.query_index), params.batch_queries),
        step,
        lambda: ndcg_at_10(list_scores(val), val),
        progress=progress,
        desc=desc,
    )
