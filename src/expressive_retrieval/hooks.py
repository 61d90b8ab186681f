"""Project hooks: ``synthetic_data`` never overwrites inputs it did not write.

docs/design.md, "Synthetic default".
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from expressive_retrieval.data.contract import RAW_ENTRIES
from expressive_retrieval.vectors.integrity import sha256_file

GENERATOR_NODE = "generate_synthetic_catalogue_node"
MARKER_NAME = ".synthetic_manifest.json"


class SyntheticDataRefused(RuntimeError):
    """The raw locations hold inputs that ``synthetic_data`` did not write."""


def fingerprint(path: Path) -> str | None:
    """Content hash of a file, or a listing hash (name, size, mtime) of a folder."""
    if path.is_file():
        return sha256_file(path)
    if path.is_dir():
        listing = sorted(
            (p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in path.iterdir() if p.is_file()
        )
        return hashlib.sha256(json.dumps(listing).encode()).hexdigest()
    return None


def _marker_path(raw_files: dict[str, str]) -> Path:
    return Path(raw_files["tracks"]).parent / MARKER_NAME


def foreign_inputs(raw_files: dict[str, str]) -> list[str]:
    """Raw paths that exist but were not written (or were changed since) by synthetic_data."""
    marker = _marker_path(raw_files)
    written = json.loads(marker.read_text()) if marker.is_file() else {}
    foreign = []
    for entry in RAW_ENTRIES:
        path = Path(raw_files[entry])
        current = fingerprint(path)
        is_empty_dir = path.is_dir() and not any(path.iterdir())
        if current is not None and not is_empty_dir and written.get(entry) != current:
            foreign.append(str(path))
    return foreign


class SyntheticDataGuard:
    """Refuses to run ``synthetic_data`` over user data; records what it wrote."""

    def __init__(self) -> None:
        self._raw_files: dict[str, str] = {}

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._raw_files = dict(context.params.get("raw_files") or {})

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline: Any, catalog: Any) -> None:
        if not self._raw_files or GENERATOR_NODE not in {n.name for n in pipeline.nodes}:
            return
        foreign = foreign_inputs(self._raw_files)
        if foreign:
            raise SyntheticDataRefused(
                "synthetic_data stops: these raw inputs were not written by it (or changed "
                f"since): {', '.join(foreign)}. It never overwrites your data. To train on "
                "them run `kedro run --pipeline=training`; to regenerate the synthetic "
                "catalogue, move them away first."
            )

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Any) -> None:
        if node.name != GENERATOR_NODE or dataset_name not in RAW_ENTRIES:
            return
        marker = _marker_path(self._raw_files)
        written = json.loads(marker.read_text()) if marker.is_file() else {}
        written[dataset_name] = fingerprint(Path(self._raw_files[dataset_name]))
        marker.write_text(json.dumps(written, indent=2, sort_keys=True))
