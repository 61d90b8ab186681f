"""Check the ``recordings`` table and its audio files before any audio is decoded."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from expressive_retrieval.audio.optional import require
from expressive_retrieval.data.contract import InputContractError, Violation
from expressive_retrieval.data.segments import is_safe_track_id

REQUIRED_COLUMNS = ("track_id", "artist_id", "work_id", "path")


def resolve(folder: str | Path, relative: str) -> Path | None:
    """``folder/relative`` when it stays inside ``folder`` (after resolving links), else None."""
    root = Path(folder).resolve()
    if Path(relative).is_absolute():
        return None
    target = (root / relative).resolve()
    return target if target.is_relative_to(root) else None


def _file_problems(path: Path, min_seconds: float) -> str | None:
    """Why a file cannot be used, from its header alone, or None."""
    if not path.is_file():
        return "no such file"
    (soundfile,) = require("soundfile", purpose="reading recordings")
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError) as error:
        return f"unreadable audio (not a format this libsndfile decodes, or corrupt: {error})"
    if info.frames == 0:
        return "zero-length audio"
    if info.duration < min_seconds:
        return (
            f"{info.duration:.2f} s of audio is shorter than one segment "
            f"(min_last_segment_seconds={min_seconds})"
        )
    return None


def check_recordings(
    recordings: pd.DataFrame, recordings_file: str, folder: str, min_seconds: float
) -> dict[str, Path]:
    """Every track's audio file, ``{track_id: path}``, once every rule holds.

    Raises:
        InputContractError: listing every violation: missing columns or values, duplicate
            or unsafe ``track_id``, a ``path`` escaping ``folder``, a missing, unreadable,
            zero-length or too short file (each naming the track and the file).
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in recordings.columns]
    if missing:
        raise InputContractError(
            [Violation(recordings_file, "recordings.columns", tuple(missing), "missing columns")]
        )
    violations = []
    nulls = recordings[list(REQUIRED_COLUMNS)].isna().any(axis=1)
    if nulls.any():
        ids = tuple(str(t) for t in recordings.loc[nulls, "track_id"])
        violations.append(Violation(recordings_file, "recordings.nulls", ids, "missing values"))
    ids = recordings["track_id"].astype(str)
    duplicates = tuple(dict.fromkeys(ids[ids.duplicated()]))
    if duplicates:
        violations.append(
            Violation(recordings_file, "track_id.unique", duplicates, "duplicate track_id values")
        )
    unsafe = tuple(t for t in ids if not is_safe_track_id(t))
    if unsafe:
        violations.append(
            Violation(
                recordings_file, "track_id.safe", unsafe, "track_id must match [A-Za-z0-9_.-]+"
            )
        )
    paths: dict[str, Path] = {}
    for track_id, relative in zip(ids, recordings["path"], strict=True):
        if not isinstance(relative, str) or track_id in paths:
            continue
        path = resolve(folder, relative)
        if path is None:
            violations.append(
                Violation(
                    recordings_file,
                    "recordings.path_inside",
                    (track_id,),
                    f"path {relative!r} escapes the audio folder {folder}",
                )
            )
            continue
        problem = _file_problems(path, min_seconds)
        if problem:
            violations.append(Violation(str(path), "audio.readable", (track_id,), problem))
        paths[track_id] = path
    if violations:
        raise InputContractError(violations)
    return paths
