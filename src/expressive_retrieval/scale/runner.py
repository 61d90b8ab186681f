"""Run a task per shard, in process or on Dask, resuming from finished shards.

A task is a top-level function ``task(shard, staging, context) -> [file URL, ...]``: it
reads what ``shard.payload`` and ``context`` name, writes its outputs as files (usually in
``staging``) and returns their URLs. ``run_shard`` wraps it where it runs (a worker, or
this process): it skips a shard whose manifest ``staging/shard-<index>.json`` holds the
shard's key and the sha256 of files that are still intact, and writes that manifest after
the task succeeds. Failures come back as ``ShardsFailed``, naming the shard and the track,
once every shard has run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from expressive_retrieval.scale import files
from expressive_retrieval.scale.settings import ScaleSettings
from expressive_retrieval.scale.shards import ItemFailed, Shard, ShardFailure, ShardsFailed

logger = logging.getLogger(__name__)

Task = Callable[[Shard, str, Mapping[str, Any]], list[str]]


@dataclass(frozen=True)
class ShardResult:
    index: int
    files: tuple[str, ...]
    reused: bool


class ShardFailed(Exception):
    """One shard's failures, raised where the shard ran and gathered by ``map_shards``."""

    def __init__(self, failures: tuple[ShardFailure, ...]) -> None:
        super().__init__(failures)
        self.failures = failures


def staging_folder(root: str, step: str, step_key: str) -> str:
    """``root/step/<step_key[:16]>`` (absolute when local, as workers may run elsewhere);
    older folders of the step are removed."""
    if files.is_local(root):
        root = str(Path(root).resolve())
    folder = files.join(files.join(root, step), step_key[:16])
    files.remove_siblings(folder)
    return folder


def _manifest(staging: str, shard: Shard) -> str:
    return files.join(staging, f"shard-{shard.index:05d}.json")


def _finished(staging: str, shard: Shard) -> tuple[str, ...] | None:
    """The shard's files when its manifest matches its key and every file's sha256."""
    manifest = files.read_json(_manifest(staging, shard))
    if not manifest or manifest.get("key") != shard.key:
        return None
    for url, digest in manifest["files"].items():
        if not files.exists(url) or files.sha256_url(url) != digest:
            return None
    return tuple(manifest["files"])


def run_shard(task: Task, shard: Shard, staging: str, context: Mapping[str, Any]) -> ShardResult:
    """Run ``task`` on ``shard`` unless it is finished; record its outputs' checksums."""
    done = _finished(staging, shard)
    if done is not None:
        return ShardResult(shard.index, done, reused=True)
    try:
        written = task(shard, staging, context)
    except ItemFailed as error:
        failed = error.failures
    except Exception as error:
        failed = ((None, type(error).__name__, str(error)),)
    else:
        digests = {url: files.sha256_url(url) for url in written}
        files.write_json(_manifest(staging, shard), {"key": shard.key, "files": digests})
        return ShardResult(shard.index, tuple(written), reused=False)
    raise ShardFailed(tuple(ShardFailure(shard.index, shard.label, *f) for f in failed))


@contextmanager
def _client(settings: ScaleSettings) -> Iterator[Any]:
    """A client of ``scheduler_address``, or of a new ``LocalCluster`` closed afterwards."""
    from distributed import Client, LocalCluster

    if settings.scheduler_address:
        with Client(settings.scheduler_address) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=settings.workers,
            threads_per_worker=settings.threads_per_worker,
            processes=settings.processes,
            dashboard_address=None,
            silence_logs=logging.WARNING,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _unexpected(shard: Shard, error: BaseException) -> tuple[ShardFailure, ...]:
    """A failure outside the task (a worker lost, an unreadable manifest), by shard."""
    if isinstance(error, ShardFailed):
        return error.failures
    return (ShardFailure(shard.index, shard.label, None, type(error).__name__, str(error)),)


def _on_dask(
    task: Task,
    shards: Sequence[Shard],
    staging: str,
    context: Mapping[str, Any],
    settings: ScaleSettings,
) -> tuple[dict[int, ShardResult], list[ShardFailure]]:
    from distributed import as_completed

    results, failures = {}, []
    with _client(settings) as client:
        futures = {
            client.submit(run_shard, task, shard, staging, context, pure=False): shard
            for shard in shards
        }
        for future in as_completed(futures):
            if future.status == "finished":
                results[futures[future].index] = future.result()
            else:
                failures += _unexpected(futures[future], future.exception())
    return results, failures


def map_shards(
    step: str,
    task: Task,
    shards: Sequence[Shard],
    staging: str,
    context: Mapping[str, Any],
    settings: ScaleSettings,
) -> list[ShardResult]:
    """Every shard's result, in shard order, once all have run.

    Args:
        step: the step's name, for logs and errors.
        task: a top-level function (workers import it by name).
        shards: from ``plan_shards``.
        staging: the step's staging folder or URL (``staging_folder``), reachable by workers.
        context: small, picklable settings every shard shares (paths, parameters).
        settings: where to run.

    Raises:
        ShardsFailed: naming every failed shard and track; finished shards keep their
            manifests, so the next run only runs the others.
    """
    started = time.perf_counter()
    num_tracks = sum(len(s.items) for s in shards)
    if settings.uses_dask(num_tracks):
        where = settings.scheduler_address or f"a LocalCluster of {settings.workers} workers"
        results, failures = _on_dask(task, shards, staging, context, settings)
    else:
        where, results, failures = "this process", {}, []
        for shard in shards:
            try:
                results[shard.index] = run_shard(task, shard, staging, context)
            except Exception as error:
                failures += _unexpected(shard, error)
    if failures:
        raise ShardsFailed(step, len(shards), tuple(sorted(failures, key=lambda f: f.shard)))
    reused = sum(r.reused for r in results.values())
    logger.info(
        "%s: %d shards (%d tracks, %d reused) on %s in %.1fs",
        step,
        len(shards),
        num_tracks,
        reused,
        where,
        time.perf_counter() - started,
    )
    return [results[s.index] for s in shards]
