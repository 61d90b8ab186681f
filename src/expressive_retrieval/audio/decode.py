"""Decode audio to mono at the model's rate and cut it into segments, block by block.

The segmentation rule (recorded in ``extraction``): non-overlapping windows of
``segment_seconds``; a last, shorter remainder becomes one more segment, embedded and
measured at its own length without padding, when it lasts at least
``min_last_segment_seconds``, and is dropped otherwise. Audio that yields no segment at
all (zero-length, or shorter than ``min_last_segment_seconds``) is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from itertools import chain
from pathlib import Path

import numpy as np

from expressive_retrieval.audio.optional import require

BLOCK_SECONDS = 10.0  # input read and resampled this much at a time: bounds memory per track
RESAMPLER = "soxr HQ"
DOWNMIX = "mean of the channels"


class AudioError(ValueError):
    """Audio that cannot be used: unreadable, corrupt, NaN samples or too short."""


@dataclass(frozen=True)
class Segmentation:
    """How audio becomes segments; every field is recorded in ``extraction``."""

    sample_rate: int
    segment_seconds: float = 5.0
    min_last_segment_seconds: float = 2.5

    def __post_init__(self) -> None:
        if not 0 < self.min_last_segment_seconds <= self.segment_seconds:
            raise ValueError(
                "min_last_segment_seconds must be in (0, segment_seconds], got "
                f"{self.min_last_segment_seconds} for segment_seconds={self.segment_seconds}"
            )

    @property
    def segment_samples(self) -> int:
        return round(self.segment_seconds * self.sample_rate)

    @property
    def min_last_samples(self) -> int:
        return round(self.min_last_segment_seconds * self.sample_rate)

    def to_dict(self) -> dict[str, float | int | str]:
        return {
            **asdict(self),
            "last_segment_rule": (
                "a remainder shorter than segment_seconds is kept, unpadded, when it lasts at "
                "least min_last_segment_seconds, and dropped otherwise"
            ),
            "downmix": DOWNMIX,
            "resampler": RESAMPLER,
        }


def _resampled(
    blocks: Iterable[np.ndarray], in_rate: int, out_rate: int, what: str
) -> Iterator[np.ndarray]:
    """Mono float32 blocks at ``out_rate`` from ``[frames, channels]`` blocks at ``in_rate``."""
    (soxr,) = require("soxr", purpose="resampling audio")
    stream = None if in_rate == out_rate else soxr.ResampleStream(in_rate, out_rate, 1, "float32")
    for block in blocks:
        if not np.isfinite(block).all():
            raise AudioError(f"{what}: NaN or infinite samples")
        mono = np.ascontiguousarray(block.mean(axis=1), dtype=np.float32)
        yield mono if stream is None else stream.resample_chunk(mono)
    if stream is not None:
        yield stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


class AudioSegments:
    """Iterates the segments (mono float32 at ``segmentation.sample_rate``) of one recording.

    Args:
        source: an audio file (WAV, FLAC, OGG, and MP3 where the installed libsndfile
            decodes it) or an array of samples, ``[frames]`` or ``[frames, channels]``.
        segmentation: the rate and the segment rule.
        sample_rate: the array's rate (required for an array, ignored for a file).

    After a full iteration ``duration_s`` holds the decoded duration of the input.

    Raises (while iterating):
        AudioError: unreadable or corrupt input, NaN samples, or no segment at all.
    """

    def __init__(
        self,
        source: str | Path | np.ndarray,
        segmentation: Segmentation,
        sample_rate: int | None = None,
    ) -> None:
        self.source, self.segmentation = source, segmentation
        if isinstance(source, np.ndarray) and not sample_rate:
            raise ValueError("an array of samples needs its sample_rate")
        self.input_rate = sample_rate
        self.duration_s = 0.0
        self.what = "audio array" if isinstance(source, np.ndarray) else str(source)

    def _blocks(self) -> Iterator[np.ndarray]:
        """``[frames, channels]`` float32 blocks of the input, counting the frames read."""
        if isinstance(self.source, np.ndarray):
            samples = self.source.reshape(len(self.source), -1)
            if samples.dtype.kind != "f":
                raise AudioError(f"{self.what}: samples must be floats, got {samples.dtype}")
            step = max(1, round(BLOCK_SECONDS * self.input_rate))
            for start in range(0, len(samples), step):
                self.duration_s += len(samples[start : start + step]) / self.input_rate
                yield samples[start : start + step]
            return
        (soundfile,) = require("soundfile", purpose="decoding audio")
        try:
            with soundfile.SoundFile(self.source) as handle:
                self.input_rate = handle.samplerate
                step = max(1, round(BLOCK_SECONDS * handle.samplerate))
                for block in handle.blocks(blocksize=step, dtype="float32", always_2d=True):
                    self.duration_s += len(block) / handle.samplerate
                    yield block
        except soundfile.LibsndfileError as error:
            raise AudioError(f"{self.what}: unreadable or corrupt audio ({error})") from error

    def __iter__(self) -> Iterator[np.ndarray]:
        self.duration_s = 0.0
        size, rule = self.segmentation.segment_samples, self.segmentation
        blocks = self._blocks()
        first = next(blocks, None)  # opens the file, so the input rate is known
        if first is None:
            raise AudioError(f"{self.what}: zero-length audio")
        mono = _resampled(chain([first], blocks), int(self.input_rate), rule.sample_rate, self.what)
        pending, count = np.zeros(0, dtype=np.float32), 0
        for chunk in mono:
            pending = np.concatenate([pending, chunk])
            while len(pending) >= size:
                yield pending[:size]
                pending, count = pending[size:], count + 1
        if len(pending) >= rule.min_last_samples:
            yield pending
            count += 1
        if count == 0:
            raise AudioError(
                f"{self.what}: {self.duration_s:.2f} s of audio is shorter than one segment "
                f"(min_last_segment_seconds={rule.min_last_segment_seconds})"
            )
