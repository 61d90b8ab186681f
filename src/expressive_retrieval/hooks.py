"""Project hooks: the pipelines that write raw inputs (``synthetic_data``, ``audio_features``)
never overwrite inputs they did not write (docs/design.md, "Synthetic default";
docs/input_contract.md, "From audio"); later pipelines use one consistent label set
(docs/design.md, "Pipelines and catalog names").
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from expressive_retrieval.data.contract import RAW_ENTRIES
from expressive_retrieval.data.label_set import LABEL_TABLES, verify_label_set
from expressive_retrieval.vectors.integrity import sha256_file

GUARDED = (
    *RAW_ENTRIES,
    "extraction",
    "twins",
    "twin_segments",
)  # every raw location a writer may fill


@dataclass(frozen=True)
class RawWriter:
    """A pipeline whose node writes raw entries, and the manifest recording what it wrote."""

    pipeline: str
    node: str
    marker: str
    advice: str


WRITERS = (
    RawWriter(
        "synthetic_data",
        "generate_synthetic_catalogue_node",
        ".synthetic_manifest.json",
        "To train on them run `kedro run --pipeline=training`; to regenerate the synthetic "
        "catalogue, move them away first.",
    ),
    RawWriter(
        "audio_features",
        "extract_audio_features_node",
        ".audio_features_manifest.json",
        "To extract features from your recordings into these locations, move the files there "
        "away first (or point the raw paths elsewhere in conf/local/globals.yml).",
    ),
)


class RawInputsRefused(RuntimeError):
    """The raw locations hold inputs that the pipeline about to write them did not write."""


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


def _marker_path(raw_files: dict[str, str], marker: str) -> Path:
    return Path(raw_files["tracks"]).parent / marker


def foreign_inputs(raw_files: dict[str, str], marker: str = WRITERS[0].marker) -> list[str]:
    """Raw paths that exist but were not written (or were changed since) by the writer
    whose manifest is ``marker``."""
    path_of_marker = _marker_path(raw_files, marker)
    written = json.loads(path_of_marker.read_text()) if path_of_marker.is_file() else {}
    foreign = []
    for entry in GUARDED:
        if entry not in raw_files:
            continue
        path = Path(raw_files[entry])
        current = fingerprint(path)
        is_empty_dir = path.is_dir() and not any(path.iterdir())
        if current is not None and not is_empty_dir and written.get(entry) != current:
            foreign.append(str(path))
    return foreign


class RawInputsGuard:
    """Refuses to run a raw writer over data it did not write; records what it wrote."""

    def __init__(self) -> None:
        self._raw_files: dict[str, str] = {}

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._raw_files = dict(context.params.get("raw_files") or {})

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline: Any, catalog: Any) -> None:
        nodes = {n.name for n in pipeline.nodes}
        for writer in WRITERS:
            if not self._raw_files or writer.node not in nodes:
                continue
            foreign = foreign_inputs(self._raw_files, writer.marker)
            if foreign:
                raise RawInputsRefused(
                    f"{writer.pipeline} stops: these raw inputs were not written by it (or "
                    f"changed since): {', '.join(foreign)}. It never overwrites your data. "
                    + writer.advice
                )

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Any) -> None:
        writer = next((w for w in WRITERS if w.node == node.name), None)
        if writer is None or dataset_name not in GUARDED:
            return
        marker = _marker_path(self._raw_files, writer.marker)
        written = json.loads(marker.read_text()) if marker.is_file() else {}
        written[dataset_name] = fingerprint(Path(self._raw_files[dataset_name]))
        marker.write_text(json.dumps(written, indent=2, sort_keys=True))


class LabelSetGuard:
    """Every node that reads ``dataset_version`` checks the label tables it reads with it.

    Before such a node runs, each label table among its inputs must have the sha256 that
    ``dataset_version`` recorded (``verify_label_set``); a mismatch stops the run before the
    node writes anything. A table is hashed once per run: every load of it in one run
    reads the same latest version.
    """

    def __init__(self) -> None:
        self._verified: set[str] = set()

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline: Any, catalog: Any) -> None:
        self._verified = set()

    @hook_impl
    def before_node_run(self, node: Any, inputs: dict[str, Any]) -> None:
        if "dataset_version" not in inputs:
            return
        tables = {
            name: data
            for name, data in inputs.items()
            if name in LABEL_TABLES and name not in self._verified
        }
        verify_label_set(inputs["dataset_version"], tables)
        self._verified |= set(tables)
