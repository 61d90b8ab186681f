"""Load a bundle and answer queries: the API a serving service installs.

docs/design.md, "Serving API".

``load_bundle`` verifies the bundle before reading any weights or index; the
``Retriever`` it returns embeds query segments with the numpy head, searches clips through
the bundle's FAISS index and scores tracks through their clips, as evaluation does.
Nothing here imports Kedro, torch or pandas.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from safetensors.numpy import load_file

from expressive_retrieval.serving.audio_query import AudioError, AudioQueries
from expressive_retrieval.serving.bundle import (
    FILES,
    OPTIONAL_FILES,
    PROJECTION,
    BundleIntegrityError,
    bundle_sha256,
    release_in,
    verify_bundle,
)
from expressive_retrieval.serving.head import NumpyProjectionHead
from expressive_retrieval.vectors.aspects import track_vectors, weight_query_vectors
from expressive_retrieval.vectors.index import read_index
from expressive_retrieval.vectors.index import read_manifest as read_manifest_of_index
from expressive_retrieval.vectors.track_scores import aggregate_to_tracks

Weights = Mapping[str, float] | Sequence[float] | np.ndarray | None
UNIT_TOLERANCE = 1e-3  # a ready query vector's sub-vectors must have norm 1 ± this
EMBED_UNIT_MIN = 0.5  # an embedded sub-vector shorter than this (an overflow) is refused
EMBED_CHUNK = 32  # clips embedded per numpy pass
TRACK_DEPTH_FACTOR = 4  # clip hits fetched per wanted track (× track_scoring.k), then ×4
TRACK_MAX_DEPTH = 4096  # clip hits a track search deepens to at most
TRACK_ANN_CANDIDATES = 1600  # clip hits whose tracks are re-scored, with an ANN index
TRACK_REFINE_FACTOR = 2  # an ANN index's refinement factor when it finds track candidates
TRACK_CHUNK = 64  # candidate tracks scored exactly per pass


class QueryError(ValueError):
    """A query, its aspect weights or ``k`` are of the wrong shape, type or values."""


@dataclass(frozen=True)
class Hit:
    """One search result. For a track, ``id == track_id`` and the segment fields are None."""

    id: str
    score: float
    track_id: str
    segment_start: int | None = None
    segment_end: int | None = None


def load_bundle(
    path: str | os.PathLike[str],
    verify: bool = True,
    expected_sha256: str | None = None,
    latest: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Retriever:
    """Open a bundle for search: a local folder, or an fsspec URL (``s3://bucket/prefix/
    <version>``, or the prefix with ``latest=True``) fetched into a local cache.

    Args:
        path: ``data/09_export/<bundle_version>`` (or a copy of it), or a URL.
        verify: check every file's sha256 before reading anything (seconds for a million
            clips). ``False`` still checks the manifest's schema, ``README.md``, that
            every listed file is present with its recorded size and no other file is
            there, and the arrays' shapes and dtypes; it skips only content hashing.
        expected_sha256: refuse any bundle whose ``bundle_sha256`` differs (pinning).
        latest: ``path`` is a publication prefix; load the bundle its ``LATEST`` names.
        cache_dir: where URLs are cached (default ``$EXPRESSIVE_RETRIEVAL_CACHE`` or
            ``~/.cache/expressive_retrieval/bundles``), one folder per ``bundle_sha256``.
        storage_options: passed to fsspec for URLs (credentials come from the standard
            AWS chain, never from here or the bundle, unless you pass them).

    Raises:
        BundleIntegrityError: a file is missing, unlisted, truncated or altered, the
            manifest breaks its schema or is not the pinned one, or the manifest, model
            config, index and ids disagree.
    """
    text = os.fspath(path)
    if "://" in text:
        from expressive_retrieval.serving.remote import fetch_bundle

        folder = fetch_bundle(text, latest, expected_sha256, cache_dir, storage_options)
    elif latest:
        raise BundleIntegrityError(f"{text}: latest=True needs a publication URL, not a folder")
    else:
        folder = Path(text)
    manifest = verify_bundle(folder, content=verify, expected_sha256=expected_sha256)
    return Retriever(folder, manifest)


def _all_finite(array: np.ndarray) -> bool:
    """No NaN or infinity in ``array``; float16 by its exponent bits (numpy's ``isfinite``
    is ten times slower on float16 than on float32)."""
    if array.dtype == np.float16:
        return bool((array.view(np.uint16) & np.uint16(0x7C00)).max(initial=0) < 0x7C00)
    return bool(np.isfinite(array).all())


def _sorted_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """``(values, codes)`` of a dictionary-encoded column, values sorted (as ``np.unique``
    with ``return_inverse``), without a Python string per row."""
    array = column.combine_chunks()
    values = np.asarray(array.dictionary.to_pylist(), dtype=object)
    order = np.argsort(values, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return values[order], rank[array.indices.to_numpy(zero_copy_only=False)]


def _ordered(ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Positions by score descending, ties by id descending (trec_eval's order)."""
    by_id = sorted(range(len(ids)), key=ids.__getitem__, reverse=True)
    return np.asarray(sorted(by_id, key=lambda i: -float(scores[i])), dtype=np.int64)


class Retriever:
    """Searches one verified bundle. Thread-safe: after loading nothing is written, so
    concurrent threads may query one instance (FAISS searches release the GIL).

    Use ``load_bundle`` rather than the constructor.
    """

    def __init__(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.folder, self.manifest = Path(folder), manifest
        self.bundle_sha256: str = bundle_sha256(manifest)
        self.release: str = release_in(manifest)
        config = json.loads((folder / FILES["projection_config"]).read_text())
        self.head = NumpyProjectionHead(config, load_file(folder / FILES["projection_model"]))
        self.aspects: list[str] = list(config["aspects"])
        self.default_weights = np.asarray(config["default_weights"], dtype=np.float64)
        self._check_manifest(config)
        serving = manifest["serving"]
        self.clip_hop_segments = int(serving["clip_hop_segments"])
        self.track_scoring = {
            "how": serving["track_scoring"]["how"],
            "k": int(serving["track_scoring"]["k"]),
        }
        # Sizes (and checksums) checked, FAISS reads the index only if it is also the one
        # its own manifest describes (FAISS does not validate its input).
        self._check_index(read_manifest_of_index(folder / PROJECTION))
        # Memory-mapped: a bundle never changes, and a 1M-clip index opens in ~0.1 s.
        self.index, _ = read_index(folder / PROJECTION, verify=False, mmap=True)
        expected = (self.head.vector_dim, serving["index"]["ntotal"])
        if (self.index.d, self.index.ntotal) != expected:
            raise self._fail(
                f"{FILES['index']} holds {self.index.ntotal} vectors of dim {self.index.d}, "
                f"the manifest and model say {expected[1]} of dim {expected[0]}"
            )
        self._exact_index = isinstance(self.index, faiss.IndexFlat)
        # Track candidates are re-scored exactly from the clip vectors, so their search
        # skips most of the index's own exact refinement (k_factor_rf 32 → 2: at 800
        # hits, 2 ms instead of 18 ms per query).
        self._candidate_params = (
            faiss.IndexRefineSearchParameters(k_factor=TRACK_REFINE_FACTOR)
            if isinstance(self.index, faiss.IndexRefine)
            else None
        )
        self.clip_vectors = self._array_file("clip_vectors")
        self._track_vectors = self._array_file("track_vectors")
        columns = ["clip_id", "track_id", "segment_start", "segment_end", "split"]
        # Track and split ids are read dictionary-encoded: no Python string per clip.
        table = pq.read_table(
            folder / FILES["clip_ids"], columns=columns, read_dictionary=["track_id", "split"]
        ).unify_dictionaries()
        self.clip_ids: pa.StringArray = table["clip_id"].combine_chunks()
        self._segment_start = table["segment_start"].to_numpy()
        self._segment_end = table["segment_end"].to_numpy()
        self.track_ids, self._track_of = _sorted_codes(table["track_id"])
        self.splits, self._split_of = _sorted_codes(table["split"])
        self._check_rows()
        self._track_code = {str(t): i for i, t in enumerate(self.track_ids)}
        self._track_size = np.bincount(self._track_of, minlength=len(self.track_ids))
        self._clips_of_track = np.argsort(self._track_of, kind="stable")
        self._track_start = np.concatenate([[0], np.cumsum(self._track_size)])
        self._split_counts = np.bincount(self._split_of, minlength=len(self.splits))
        listed = {entry["path"] for entry in manifest["files"]}
        extraction = OPTIONAL_FILES["extraction"]
        self.extraction: dict[str, Any] | None = (
            json.loads((folder / extraction).read_text()) if extraction in listed else None
        )
        # torch-free until audio is embedded; the model is loaded once, under a lock.
        self._audio_queries = AudioQueries(self.extraction) if self.extraction else None

    # ---- loading checks -------------------------------------------------------------------
    def _fail(self, what: str) -> BundleIntegrityError:
        return BundleIntegrityError(f"{self.folder}: {what}")

    def _array_file(self, name: str) -> np.ndarray:
        """A bundled ``.npy`` as a read-only memory map (its header checked by numpy)."""
        try:
            return np.load(self.folder / FILES[name], mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as error:
            raise self._fail(f"{FILES[name]}: not a readable .npy array ({error})") from error

    def _check_manifest(self, config: dict[str, Any]) -> None:
        serving = self.manifest["serving"]
        recorded = (
            self.manifest["L"],
            self.manifest["D"],
            self.manifest["aspects"],
            serving["clip_segments"],
            serving["vector_dim"],
        )
        actual = (
            config["num_layers"],
            config["dim"],
            self.aspects,
            self.head.clip_segments,
            self.head.vector_dim,
        )
        if recorded != actual:
            raise self._fail(
                "manifest.json records L, D, aspects, clip_segments, vector_dim = "
                f"{recorded}, {FILES['projection_config']} {actual}"
            )

    def _check_index(self, index_manifest: dict[str, Any]) -> None:
        listed = {entry["path"]: entry["sha256"] for entry in self.manifest["files"]}
        if listed[FILES["index"]] != index_manifest["checksums"]["index.faiss"]:
            raise self._fail(
                f"{FILES['index']} does not match the checksum in {FILES['index_manifest']}"
            )

    def _check_rows(self) -> None:
        rows, dim = self.index.ntotal, self.head.vector_dim
        arrays = {
            "clip_vectors": (self.clip_vectors, (rows, dim)),
            "track_vectors": (self._track_vectors, (len(self.track_ids), dim)),
        }
        for name, (array, shape) in arrays.items():
            if array.shape != shape or array.dtype != np.float32:
                raise self._fail(
                    f"{FILES[name]} is {array.dtype} {list(array.shape)}, expected float32 "
                    f"{list(shape)} (the index's {rows} clips, {len(self.track_ids)} tracks)"
                )
        if len(self.clip_ids) != rows:
            raise self._fail(f"{FILES['clip_ids']} has {len(self.clip_ids)} rows, the index {rows}")

    # ---- queries ----------------------------------------------------------------------------
    @property
    def vector_dim(self) -> int:
        """Width of a retrieval vector: ``len(aspects) · sub_dim``."""
        return self.head.vector_dim

    def _array(self, query: Any, what: str) -> np.ndarray:
        try:
            array = np.asarray(query)
        except (TypeError, ValueError) as error:
            raise QueryError(f"{what} is not a numeric array ({error})") from None
        if array.dtype.kind != "f":
            raise QueryError(f"{what} must be a float16/32/64 array, got dtype {array.dtype}")
        if not _all_finite(array):
            raise QueryError(f"{what} contains NaN or infinite values")
        return array

    def _windows(self, segments: np.ndarray, what: str) -> np.ndarray:
        """Clips ``[W, S, L, D]`` of one query's segments ``[n_seg, L, D]``, at the clip hop."""
        head, hop = self.head, self.clip_hop_segments
        if segments.ndim != 3 or segments.shape[1:] != (head.num_layers, head.dim):
            raise QueryError(
                f"{what} must be segments [n_seg, {head.num_layers}, {head.dim}] or a vector "
                f"[{head.vector_dim}], got shape {list(segments.shape)}"
            )
        length = segments.shape[0]
        if length < head.clip_segments:
            raise QueryError(
                f"{what} has {length} segments; a query needs at least clip_segments="
                f"{head.clip_segments}"
            )
        if length == head.clip_segments:
            return segments[None]
        starts = np.arange((length - head.clip_segments) // hop + 1) * hop
        return np.stack([segments[s : s + head.clip_segments] for s in starts])

    def embed_batch(self, queries: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Unweighted vectors ``[Q, vector_dim]`` of queries' segments ``[n_seg, L, D]``.

        A query of exactly ``clip_segments`` segments is one clip. A longer one is cut into
        clips at the bundle's clip hop (as ``labels_and_splits`` cuts tracks) whose
        sub-vectors are averaged per aspect and re-normalised, as a track vector is; a
        shorter one is refused.
        """
        windows = [
            self._windows(self._array(q, f"query {i}"), f"query {i}") for i, q in enumerate(queries)
        ]
        if not windows:
            return np.zeros((0, self.vector_dim), dtype=np.float32)
        owner = np.repeat(np.arange(len(windows)), [len(w) for w in windows])
        clips = np.concatenate(windows)
        # Chunks bound the intermediates' memory (a chunk of MERT-95M clips is ~10 MB).
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused below
            vectors = np.concatenate(
                [
                    self.head.embed(clips[i : i + EMBED_CHUNK])
                    for i in range(0, len(clips), EMBED_CHUNK)
                ]
            )
        if len(owner) != len(windows):
            vectors = track_vectors(vectors, owner, len(windows), len(self.aspects))
        norms = np.linalg.norm(vectors.reshape(len(windows), len(self.aspects), -1), axis=2)
        bad = np.flatnonzero(~(norms >= EMBED_UNIT_MIN).all(axis=1))  # NaN fails too
        if bad.size:
            raise QueryError(
                f"query {int(bad[0])}: its embedding is not finite (the segments' magnitudes "
                "overflow the projection head); real embeddings never reach this"
            )
        return vectors

    def embed(self, segments: np.ndarray) -> np.ndarray:
        """The unweighted vector ``[vector_dim]`` of one query's segments (``embed_batch``)."""
        return self.embed_batch([segments])[0]

    def embed_audio(
        self,
        audio: str | Path | np.ndarray,
        sample_rate: int | None = None,
        model: str | Path | None = None,
        device: str = "auto",
        batch_segments: int = 8,
    ) -> np.ndarray:
        """Segments ``[n_seg, L, D]`` (float16) of a recording, embedded as the corpus was.

        Pass them to ``search_clips``/``search_tracks`` or ``embed``. Needs
        ``pip install 'expressive-retrieval[audio]'`` and a bundle with an extraction
        record (a corpus embedded by ``audio_features``).

        Args:
            audio: an audio file (WAV, FLAC, OGG; MP3 where libsndfile decodes it) or
                samples ``[frames]`` / ``[frames, channels]``; downmixed and resampled as
                recorded.
            sample_rate: the rate of an array (ignored for a file).
            model: where the recorded model is on this machine (default: the recorded
                location); its weights must hash to the recorded sha256.
            device: ``"auto"`` (cuda when available), ``"cpu"``, ...
            batch_segments: segments per model call.

        Raises:
            QueryError: no extraction record, or unusable audio.
            ModelMismatchError: the model's weights differ from the recorded ones.
        """
        if self._audio_queries is None:
            raise QueryError(
                f"{self.folder}: this bundle has no {OPTIONAL_FILES['extraction']}; its corpus "
                "was not embedded by audio_features, so embed queries as the corpus was"
            )
        try:
            return self._audio_queries.embed(audio, sample_rate, model, device, batch_segments)
        except AudioError as error:
            raise QueryError(str(error)) from error

    def _query_vectors(self, queries: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """``[Q, vector_dim]`` from ready vectors and/or segments, each query checked."""
        if isinstance(queries, np.ndarray) and queries.ndim in (2, 4):
            queries = list(queries)
        if not isinstance(queries, Sequence) or isinstance(queries, str | bytes):
            raise QueryError(
                f"queries must be a list of queries or a [Q, ...] array, got {type(queries)}"
            )
        out = np.empty((len(queries), self.vector_dim), dtype=np.float32)
        is_vector = [np.ndim(q) == 1 for q in queries]
        segments = [q for q, flat in zip(queries, is_vector, strict=True) if not flat]
        if segments:
            out[~np.asarray(is_vector)] = self.embed_batch(segments)
        for i in np.flatnonzero(is_vector):
            out[i] = self._ready_vector(queries[i], f"query {i}")
        return out

    def _ready_vector(self, query: Any, what: str) -> np.ndarray:
        vector = self._array(query, what)
        if vector.shape != (self.vector_dim,):
            raise QueryError(
                f"{what}: a vector query must be [{self.vector_dim}], got {list(vector.shape)}"
            )
        norms = np.linalg.norm(vector.reshape(len(self.aspects), -1), axis=1)
        if np.abs(norms - 1).max() > UNIT_TOLERANCE:
            raise QueryError(
                f"{what}: a vector query needs unit-norm per-aspect sub-vectors (as embed "
                f"returns), got norms {np.round(norms, 4).tolist()}"
            )
        return vector

    def _weights(self, weights: Weights) -> np.ndarray:
        """Checked aspect weights ``[A]``: defaults, a list in aspect order, or
        ``{aspect: w}`` (aspects not named weigh 0); finite, non-negative, not all zero."""
        if weights is None:
            return self.default_weights
        if isinstance(weights, Mapping):
            unknown = sorted(set(weights) - set(self.aspects), key=repr)
            if unknown:
                raise QueryError(f"unknown aspects {unknown}; this bundle has {self.aspects}")
            weights = [weights.get(a, 0.0) for a in self.aspects]
        values = list(weights) if isinstance(weights, Sequence | np.ndarray) else [weights]
        if len(values) != len(self.aspects) or not all(
            isinstance(w, numbers.Real) and not isinstance(w, bool) for w in values
        ):
            raise QueryError(
                f"weights must be {len(self.aspects)} numbers in aspect order {self.aspects} "
                f"or {{aspect: weight}}, got {weights!r}"
            )
        w = np.asarray(values, dtype=np.float64)
        for name, value in zip(self.aspects, w, strict=True):
            if not np.isfinite(value) or value < 0:
                raise QueryError(f"weight of aspect {name!r} is {value}; weights are finite, >= 0")
        if not w.sum() > 0:
            raise QueryError(f"all aspect weights are zero; weigh one of {self.aspects}")
        return w

    def _weighted(
        self,
        queries: Sequence[np.ndarray] | np.ndarray,
        weights: Weights | Sequence[Weights],
    ) -> np.ndarray:
        """Weighted query vectors ``[Q, vector_dim]``; ``weights`` for all or one per query."""
        vectors = self._query_vectors(queries)
        per_query = isinstance(weights, np.ndarray) and weights.ndim == 2
        per_query |= isinstance(weights, list | tuple) and any(
            w is None or not np.isscalar(w) for w in weights
        )
        if per_query and len(weights) != len(vectors):
            raise QueryError(f"weights needs one entry per query ({len(vectors)})")
        rows = (
            np.stack([self._weights(w) for w in weights]) if per_query else self._weights(weights)
        )
        if not len(vectors):
            return vectors
        return weight_query_vectors(vectors, rows, len(self.aspects))

    # ---- filtering and clip hits --------------------------------------------------------------
    def _filters(
        self, exclude_tracks: Sequence[Collection[str]] | None, count: int
    ) -> list[np.ndarray]:
        """Per query, the codes of the tracks it excludes (unknown track ids are ignored)."""
        excluded = exclude_tracks if exclude_tracks is not None else [()] * count
        if (
            not isinstance(excluded, Sequence)
            or isinstance(excluded, str)
            or len(excluded) != count
        ):
            raise QueryError(
                f"exclude_tracks needs one collection of track ids per query ({count})"
            )
        if any(
            isinstance(tracks, str)
            or not isinstance(tracks, Collection)
            or not all(isinstance(t, str) for t in tracks)
            for tracks in excluded
        ):
            raise QueryError("each exclude_tracks entry is a collection of track ids (strings)")
        return [
            np.asarray(
                [self._track_code[t] for t in tracks if t in self._track_code], dtype=np.int64
            )
            for tracks in excluded
        ]

    def _wanted(self, splits: Collection[str] | None) -> np.ndarray | None:
        """Codes of the wanted splits; unknown names and an empty filter are refused."""
        if splits is None:
            return None
        if isinstance(splits, str) or not isinstance(splits, Collection):
            raise QueryError(f"splits is a collection of split names, got {splits!r}")
        known = set(self.splits.tolist())
        unknown = sorted(repr(name) for name in splits if name not in known)
        if unknown or not splits:
            raise QueryError(
                f"unknown splits {unknown or '(none given)'}; this bundle has {sorted(known)}"
            )
        return np.flatnonzero(np.isin(self.splits, list(splits)))

    def _keep(self, rows: np.ndarray, codes: np.ndarray, wanted: np.ndarray | None) -> np.ndarray:
        keep = rows >= 0
        safe = np.maximum(rows, 0)
        if codes.size:
            keep &= ~np.isin(self._track_of[safe], codes)
        if wanted is not None:
            keep &= np.isin(self._split_of[safe], wanted)
        return keep

    def _allowed_hits(
        self,
        vectors: np.ndarray,
        depth: int,
        codes: list[np.ndarray],
        wanted: np.ndarray | None,
        params: faiss.SearchParameters | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray, bool]]:
        """Per query, the best ``depth`` allowed clip rows, their scores, and whether
        allowed clips beyond them may exist.

        One batched search fetches ``depth`` scaled up by the share of clips the split
        filter keeps, plus the clips of excluded tracks; a query left short is searched
        again four times deeper.
        """
        total = self.index.ntotal
        kept = self._split_counts.sum() if wanted is None else self._split_counts[wanted].sum()
        excluded = [int((self._track_size[c]).sum()) for c in codes]
        fetch = np.minimum(total, math.ceil(depth * total / max(kept, 1)) + np.asarray(excluded))
        results: list[Any] = [None] * len(vectors)
        pending = np.arange(len(vectors))
        while pending.size:
            deepest = int(max(fetch[pending].max(), 1))
            queries = np.ascontiguousarray(vectors[pending], dtype=np.float32)
            scores, rows = self.index.search(queries, deepest, params=params)
            short = []
            for q, q_scores, q_rows in zip(pending, scores, rows, strict=True):
                keep = self._keep(q_rows, codes[q], wanted)
                if keep.sum() >= depth or deepest >= total:
                    more = keep.sum() > depth or deepest < total
                    results[q] = (q_rows[keep][:depth], q_scores[keep][:depth], bool(more))
                else:
                    short.append(q)
            pending = np.asarray(short, dtype=np.int64)
            fetch[pending] = np.minimum(total, fetch[pending] * 4)
        return results

    def _prepare(
        self,
        queries: Sequence[np.ndarray] | np.ndarray,
        weights: Weights | Sequence[Weights],
        k: int,
        exclude_tracks: Sequence[Collection[str]] | None,
        splits: Collection[str] | None,
        most: int,
    ) -> tuple[np.ndarray, int, list[np.ndarray], np.ndarray | None]:
        """Checked weighted query vectors, ``k`` clipped to ``most``, excluded track codes
        and wanted split codes. Any malformed argument raises ``QueryError``."""
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise QueryError(f"k must be a positive integer, got {k!r}")
        try:
            vectors = self._weighted(queries, weights)
            return (
                vectors,
                min(int(k), most),
                self._filters(exclude_tracks, len(vectors)),
                self._wanted(splits),
            )
        except QueryError:
            raise
        except (TypeError, ValueError) as error:  # e.g. unhashable filter entries
            raise QueryError(f"malformed query arguments: {error}") from error

    def _clip_hits(self, rows: np.ndarray, scores: np.ndarray) -> list[Hit]:
        ids = np.asarray(self.clip_ids.take(pa.array(rows)).to_pylist(), dtype=object)
        order = _ordered(ids, scores)
        return [
            Hit(
                id=ids[i],
                score=float(scores[i]),
                track_id=str(self.track_ids[self._track_of[rows[i]]]),
                segment_start=int(self._segment_start[rows[i]]),
                segment_end=int(self._segment_end[rows[i]]),
            )
            for i in order
        ]

    # ---- search -------------------------------------------------------------------------------
    def search_clips_batch(
        self,
        queries: Sequence[np.ndarray] | np.ndarray,
        k: int = 10,
        weights: Weights | Sequence[Weights] = None,
        exclude_tracks: Sequence[Collection[str]] | None = None,
        splits: Collection[str] | None = None,
    ) -> list[list[Hit]]:
        """The ``k`` best clips for each query (arguments as ``search_clips``).

        ``queries``: a list of queries, ``[Q, n_seg, L, D]`` or ``[Q, vector_dim]``.
        ``weights`` applies to every query, or gives one entry per query (a list of
        mappings/lists, or ``[Q, A]``); ``exclude_tracks`` has one collection per query.
        """
        vectors, k, codes, wanted = self._prepare(
            queries, weights, k, exclude_tracks, splits, self.index.ntotal
        )
        hits = self._allowed_hits(vectors, k, codes, wanted)
        return [self._clip_hits(rows, scores) for rows, scores, _ in hits]

    def search_clips(
        self,
        query: np.ndarray,
        k: int = 10,
        weights: Weights = None,
        exclude_tracks: Collection[str] = (),
        splits: Collection[str] | None = None,
    ) -> list[Hit]:
        """The ``k`` clips most similar to ``query``, best first.

        Args:
            query: segments ``[n_seg, L, D]`` (float16/32/64) or a vector from ``embed``.
            k: number of hits (fewer when fewer clips pass the filters).
            weights: aspect weights, ``{aspect: w}`` (unnamed aspects weigh 0) or ``[A]``
                in ``aspects`` order; ``None`` uses the model's default weights.
            exclude_tracks: track ids never returned (e.g. the query's own recording).
            splits: only clips of these splits (``"train"``, ``"val"``, ``"test"``, or
                ``"unassigned"``: tracks in no split, searchable but never labelled).

        Returns:
            Hits ordered by score (the weighted cosine ``Σ_a w_a cos_a / Σ_a w_a``), ties
            by clip id descending (trec_eval's order).

        Raises:
            QueryError: a query, weight or ``k`` of the wrong shape, type or value.
        """
        return self.search_clips_batch([query], k, [weights], [exclude_tracks], splits)[0]

    def _track_scores(
        self, vector: np.ndarray, tracks: np.ndarray, wanted: np.ndarray | None
    ) -> np.ndarray:
        """Exact ``track_scoring`` scores of ``tracks`` through all their (wanted) clips."""
        sizes = self._track_size[tracks]
        owner = np.repeat(np.arange(len(tracks)), sizes)
        # Each track's clips are one run of _clips_of_track: gather all runs at once.
        offsets = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        rows = self._clips_of_track[np.repeat(self._track_start[tracks], sizes) + offsets]
        if wanted is not None:
            keep = np.isin(self._split_of[rows], wanted)
            rows, owner = rows[keep], owner[keep]
        scores = np.asarray(self.clip_vectors[rows], dtype=np.float32) @ vector
        return aggregate_to_tracks(scores[None], owner, len(tracks), **self.track_scoring)[0]

    def _track_hits(
        self,
        vector: np.ndarray,
        k: int,
        codes: np.ndarray,
        wanted: np.ndarray | None,
        hits: tuple[np.ndarray, np.ndarray, bool],
        depth: int,
    ) -> list[Hit]:
        """The ``k`` best tracks, from clip ``hits`` found at ``depth``.

        A track scores at most its best clip. Candidate tracks are scored exactly in the
        order of their best hit, until the next one's best hit cannot reach the k-th best
        score. With an exact index the search deepens while a track without a hit could
        still enter the top ``k`` (the k-th best is below the last hit's score), up to
        ``TRACK_MAX_DEPTH`` clip hits; an ANN index is approximate anyway, so its one
        search of ``depth`` hits gives the candidates.
        """
        exact: dict[int, float] = {}
        while True:
            rows, scores, more = hits
            tracks, first = np.unique(self._track_of[rows], return_index=True)
            by_hit = np.argsort(first, kind="stable")
            tracks, bounds = tracks[by_hit], scores[first[by_hit]]
            kth = -np.inf
            for start in range(0, len(tracks), TRACK_CHUNK):
                if len(exact) >= k and bounds[start] < kth:
                    break
                todo = np.asarray(
                    [t for t in tracks[start : start + TRACK_CHUNK] if t not in exact]
                )
                if todo.size:
                    exact.update(
                        zip(todo.tolist(), self._track_scores(vector, todo, wanted), strict=True)
                    )
                if len(exact) >= k:
                    kth = np.partition(np.fromiter(exact.values(), float), -k)[-k]
            deepen = self._exact_index and more and depth < TRACK_MAX_DEPTH
            if not deepen or kth >= scores[-1]:
                break
            depth *= TRACK_DEPTH_FACTOR
            hits = self._allowed_hits(vector[None], depth, [codes], wanted)[0]
        found = np.fromiter(exact, np.int64, len(exact))
        values = np.fromiter(exact.values(), float, len(exact))
        order = _ordered(self.track_ids[found], values)[:k]
        return [
            Hit(id=str(self.track_ids[t]), score=float(v), track_id=str(self.track_ids[t]))
            for t, v in zip(found[order], values[order], strict=True)
        ]

    def search_tracks_batch(
        self,
        queries: Sequence[np.ndarray] | np.ndarray,
        k: int = 10,
        weights: Weights | Sequence[Weights] = None,
        exclude_tracks: Sequence[Collection[str]] | None = None,
        splits: Collection[str] | None = None,
        candidates: int | None = None,
    ) -> list[list[Hit]]:
        """The ``k`` best tracks for each query (arguments as ``search_clips_batch`` and
        ``search_tracks``)."""
        vectors, k, codes, wanted = self._prepare(
            queries, weights, k, exclude_tracks, splits, len(self.track_ids)
        )
        depth = TRACK_DEPTH_FACTOR * k * self.track_scoring["k"]
        if not self._exact_index:
            depth = max(depth, TRACK_ANN_CANDIDATES)
        if candidates is not None:
            if (
                isinstance(candidates, bool)
                or not isinstance(candidates, numbers.Integral)
                or candidates < 1
            ):
                raise QueryError(f"candidates must be a positive integer, got {candidates!r}")
            depth = int(candidates)
        depth = max(1, min(depth, self.index.ntotal))
        hits = self._allowed_hits(vectors, depth, codes, wanted, self._candidate_params)
        return [
            self._track_hits(vector, k, c, wanted, h, depth)
            for vector, c, h in zip(vectors, codes, hits, strict=True)
        ]

    def search_tracks(
        self,
        query: np.ndarray,
        k: int = 10,
        weights: Weights = None,
        exclude_tracks: Collection[str] = (),
        splits: Collection[str] | None = None,
        candidates: int | None = None,
    ) -> list[Hit]:
        """The ``k`` tracks most similar to ``query``, best first (arguments as ``search_clips``).

        A track scores as evaluation scores it: the bundle's ``track_scoring`` (by default
        the mean of its 2 best clips) over its clips' weighted cosines. Candidate tracks
        are the tracks of the best ``candidates`` clip hits (default
        ``TRACK_DEPTH_FACTOR · k · track_scoring.k``, and at least
        ``TRACK_ANN_CANDIDATES`` with an ANN index), each scored exactly from all its
        clip vectors. With an exact (Flat) index the search then deepens until no unseen
        track can enter the top ``k`` (or to ``TRACK_MAX_DEPTH`` clip hits), so it equals
        scoring every track; with an ANN index one search gives the candidates (more
        ``candidates``: higher recall, slower).
        """
        return self.search_tracks_batch(
            [query], k, [weights], [exclude_tracks], splits, candidates
        )[0]


__all__ = ["Hit", "QueryError", "Retriever", "load_bundle"]
