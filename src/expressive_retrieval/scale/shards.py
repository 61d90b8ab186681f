"""Shards of a corpus, and failures that name the shard and the track."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

# (item, error type, message); item is None when no item was being processed
ItemFailure = tuple[str | None, str, str]


@dataclass(frozen=True)
class Shard:
    """Consecutive rows ``start:stop`` of a step's corpus.

    ``items`` name what the shard covers (track ids, in order) for messages; ``payload`` is
    what its task reads (small and JSON-like: ids, paths, row ranges, never arrays); ``key``
    is the sha256 of the step's key, the payload and the inputs' fingerprints, so a
    finished shard is reused only for the same inputs.
    """

    index: int
    start: int
    stop: int
    items: tuple[str, ...]
    payload: Any
    key: str

    @property
    def label(self) -> str:
        first, last = self.items[0], self.items[-1]
        return f"shard {self.index} (rows {self.start}:{self.stop}, tracks {first}..{last})"


def _runs(names: Sequence[str], size: int, align: int) -> Iterator[tuple[int, int]]:
    """Row ranges of about ``size`` runs of equal consecutive names each, cut between two
    runs, or (``align`` > 1) at any row that is a multiple of ``align``."""
    start, runs = 0, 0
    for row in range(len(names)):
        new = row == 0 or names[row] != names[row - 1]
        if row > start and runs >= size and row % align == 0 and (new or align > 1):
            yield start, row
            start, runs, new = row, 0, True
        runs += new
    if len(names):
        yield start, len(names)


def plan_shards(
    step_key: str,
    names: Sequence[str],
    size: int,
    payload: Callable[[int, int], Any],
    fingerprints: Mapping[str, str] | None = None,
    align: int = 1,
    first_index: int = 0,
) -> list[Shard]:
    """Split rows named by ``names`` (a track id per row, rows of a track consecutive) into
    shards of at most ``size`` tracks.

    Args:
        step_key: a digest of everything the step's output depends on besides the rows
            (model weights, parameters).
        names: the track id of each row, in output order.
        size: tracks per shard.
        payload: ``(start, stop) -> `` what the shard's task reads (JSON-serialisable).
        fingerprints: ``{track_id: str}`` of each track's input (size and mtime), if any.
        align: cut only at rows that are multiples of it (then possibly inside a track):
            a task that works in fixed blocks of rows gets the blocks an unsharded run has.
        first_index: the first shard's index, when one step plans several corpora (splits)
            whose shards run together: indexes name manifests and part files.
    """
    fingerprints = fingerprints or {}
    shards = []
    for index, (start, stop) in enumerate(_runs(names, size, align), start=first_index):
        items = tuple(dict.fromkeys(names[start:stop]))
        content = payload(start, stop)
        key = json.dumps([step_key, content, [fingerprints.get(i, "") for i in items]])
        digest = hashlib.sha256(key.encode()).hexdigest()
        shards.append(Shard(index, start, stop, items, content, digest))
    return shards


class ItemFailed(Exception):
    """Raised by a shard's task: the items that failed, ``((item, error type, message), ...)``."""

    def __init__(self, failures: tuple[ItemFailure, ...]) -> None:
        super().__init__(failures)
        self.failures = failures


@contextmanager
def naming(item: str) -> Iterator[None]:
    """Inside a task: an error raised in the block names ``item``."""
    try:
        yield
    except ItemFailed:
        raise
    except Exception as error:
        raise ItemFailed(((item, type(error).__name__, str(error)),)) from error


@dataclass(frozen=True)
class ShardFailure:
    shard: int
    label: str
    item: str | None
    kind: str
    message: str

    def __str__(self) -> str:
        where = self.label if self.item is None else f"{self.label}, track {self.item}"
        return f"{where}: {self.kind}: {self.message}"


class ShardsFailed(RuntimeError):
    """Some shards of a step failed; the finished ones are kept for the next run."""

    def __init__(self, step: str, total: int, failures: tuple[ShardFailure, ...]) -> None:
        super().__init__(step, total, failures)
        self.step, self.total, self.failures = step, total, failures

    def __str__(self) -> str:
        shards = len({f.shard for f in self.failures})
        lines = "\n".join(f"  {f}" for f in self.failures)
        return (
            f"{self.step}: {shards} of {self.total} shards failed (finished shards are kept: "
            f"a re-run resumes from them):\n{lines}"
        )
