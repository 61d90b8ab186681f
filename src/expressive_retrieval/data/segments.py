"""Memory-mapped access to per-track segment embeddings ``[num_segments, L, D]``.

Segment files are never loaded whole: every read goes through ``np.load(mmap_mode="r")``
and only a small LRU of open maps is kept, so the pages a step touched are released as it
moves on and peak memory does not grow with the corpus.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

TRACK_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")


def is_safe_track_id(track_id: object) -> bool:
    """True when ``track_id`` is safe as a file name (docs/design.md, "Raw inputs")."""
    return (
        isinstance(track_id, str)
        and TRACK_ID_PATTERN.fullmatch(track_id) is not None
        and track_id not in {".", ".."}
    )


def npy_header(path: str | Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a ``.npy`` file from its header, without mapping the data."""
    # numpy's public header readers exist per format version (1.0, 2.0; 3.0 reads as 2.0).
    readers = {1: np.lib.format.read_array_header_1_0, 2: np.lib.format.read_array_header_2_0}
    with open(path, "rb") as handle:
        major, _ = np.lib.format.read_magic(handle)
        shape, _, dtype = readers[min(major, 2)](handle)
    return tuple(int(n) for n in shape), dtype


class SegmentStore:
    """Read-only view over a folder of ``<track_id>.npy`` segment arrays.

    Args:
        root: the folder holding one ``.npy`` file per track.
        max_open: how many memory maps stay open at once (an LRU).
    """

    def __init__(self, root: str | Path, max_open: int = 8) -> None:
        self.root = Path(root)
        self.max_open = max_open
        self._open: OrderedDict[str, np.ndarray] = OrderedDict()

    def __repr__(self) -> str:
        return f"SegmentStore({str(self.root)!r})"

    def path(self, track_id: str) -> Path:
        if not is_safe_track_id(track_id):
            raise ValueError(f"track_id {track_id!r} is not a safe file name")
        return self.root / f"{track_id}.npy"

    def __contains__(self, track_id: object) -> bool:
        return is_safe_track_id(track_id) and self.path(track_id).is_file()  # type: ignore[arg-type]

    def track_ids(self) -> list[str]:
        """Ids of the segment files present, sorted."""
        return sorted(p.stem for p in self.root.glob("*.npy"))

    def open(self, track_id: str) -> np.ndarray:
        """The track's array ``[num_segments, L, D]``, memory-mapped (read-only)."""
        array = self._open.pop(track_id, None)
        if array is None:
            array = np.load(self.path(track_id), mmap_mode="r", allow_pickle=False)
            while len(self._open) >= self.max_open:
                self._open.popitem(last=False)
        self._open[track_id] = array
        return array

    def close(self) -> None:
        """Drop every open map (their pages leave this process's memory)."""
        self._open.clear()

    def __enter__(self) -> SegmentStore:
        """One pass over the store: ``with segments: ...`` drops every map when it ends.

        Even when the block raises; the store stays usable for the next pass.
        """
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def shape(self, track_id: str) -> tuple[int, ...]:
        """The array shape from the ``.npy`` header, without mapping the data."""
        return npy_header(self.path(track_id))[0]

    def clip(self, track_id: str, start: int, stop: int) -> np.ndarray:
        """Segments ``start:stop`` of one track, copied in the stored dtype ``[stop-start, L, D]``.

        Callers widen to float32 where they compute (torch's half→float is the fastest).
        """
        return np.array(self.open(track_id)[start:stop])

    def clips(self, refs: Sequence[tuple[str, int, int]]) -> np.ndarray:
        """Stack equally long clips ``(track_id, start, stop)`` into ``[B, S, L, D]``."""
        return np.stack([self.clip(t, a, b) for t, a, b in refs]) if refs else np.empty(0)

    def iter_clip_chunks(
        self, refs: Iterable[tuple[str, int, int]], chunk_size: int
    ) -> Iterator[np.ndarray]:
        """Yield ``[<=chunk_size, S, L, D]`` blocks of clips, in the order given."""
        block: list[tuple[str, int, int]] = []
        with self:
            for ref in refs:
                block.append(ref)
                if len(block) == chunk_size:
                    yield self.clips(block)
                    block = []
            if block:
                yield self.clips(block)


def clip_refs(clips: pd.DataFrame) -> list[tuple[str, int, int]]:
    """``(track_id, segment_start, segment_end)`` per row of a clip table."""
    return list(
        zip(
            clips["track_id"].tolist(),
            clips["segment_start"].astype(int).tolist(),
            clips["segment_end"].astype(int).tolist(),
            strict=True,
        )
    )
