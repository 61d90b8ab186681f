"""The artifact bundle: its layout, manifest, verification and publication.

The layout is the contract of docs/design.md, "Bundle".

Kedro-free: the export pipeline writes bundles with it and the serving API reads them, so
the layout and the checks live in one place. A bundle is immutable: ``manifest.json``
lists every other file with its size and sha256, and a bundle is refused when a listed
file is missing, truncated or altered, when a file is not listed, or when the manifest
itself is malformed.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import faiss
import numpy as np

from expressive_retrieval.vectors.integrity import IntegrityError, sha256_file

MANIFEST_FILE = "manifest.json"
SCHEMA_VERSION = 1

LABELS = "labels_and_splits"
ORACLE = "oracle_scorer"
PROJECTION = "projection_retriever"
EVALUATION = "evaluation"

# Where each catalog dataset lands in the bundle (a folder for the folder datasets).
FILES = {
    "clips": f"{LABELS}/clips.parquet",
    "splits": f"{LABELS}/splits.parquet",
    "pairs": f"{LABELS}/pairs.parquet",
    "triples": f"{LABELS}/triples.parquet",
    "dataset_version": f"{LABELS}/dataset_version.json",
    "oracle_model": f"{ORACLE}/model.safetensors",
    "oracle_config": f"{ORACLE}/config.json",
    "oracle_training_metadata": f"{ORACLE}/training_metadata.json",
    "oracle_eval_report": f"{ORACLE}/eval_report.json",
    "projection_model": f"{PROJECTION}/model.safetensors",
    "projection_config": f"{PROJECTION}/config.json",
    "projection_training_metadata": f"{PROJECTION}/training_metadata.json",
    "clip_vectors": f"{PROJECTION}/clip_vectors.npy",
    "clip_ids": f"{PROJECTION}/clip_ids.parquet",
    "track_vectors": f"{PROJECTION}/track_vectors.npy",
    "track_ids": f"{PROJECTION}/track_ids.parquet",
    "index": f"{PROJECTION}/index.faiss",
    "index_manifest": f"{PROJECTION}/index_manifest.json",
    "evaluation_report": f"{EVALUATION}/evaluation_report.json",
}
# Bundled when the run has one: how the corpus was embedded from audio (audio_features).
OPTIONAL_FILES = {"extraction": "audio_features/extraction.json"}
FOLDERS = {
    "clip_index": PROJECTION,
    "evaluation_runs": f"{EVALUATION}/runs",
    "evaluation_qrels": f"{EVALUATION}/qrels",
    "evaluation_html": EVALUATION,
    "audit_kit": f"{EVALUATION}/audit",
}
METADATA_KEYS = {
    "schema_version": int,
    "bundle_version": str,
    "created_at": str,
    "dataset_version": str,
    "git_commit": str,
    "package_version": str,
    "L": int,
    "D": int,
    "aspects": list,
    "serving": dict,
    "files": list,
}


class BundleIntegrityError(IntegrityError):
    """A bundle is incomplete, altered or inconsistent; the message names the file."""


Content = bytes | np.ndarray | faiss.Index


@dataclass(frozen=True)
class BundleContents:
    """What the export pipeline hands the bundle writer.

    ``files`` maps bundle paths to serialised bytes, arrays (written as ``.npy``, read
    block by block from a memory map) or FAISS indexes (``faiss.write_index``);
    ``metadata`` goes into ``manifest.json`` beside the writer's provenance.
    """

    files: Mapping[str, Content]
    metadata: dict[str, Any] = field(default_factory=dict)


def _relative(path: str) -> PurePosixPath:
    relative = PurePosixPath(path)
    if relative.is_absolute() or not relative.parts or ".." in relative.parts:
        raise BundleIntegrityError(f"bundle path {path!r} is not a relative path inside it")
    return relative


def bundle_files(folder: Path) -> list[str]:
    """Relative paths of every file in ``folder`` but the manifest, sorted.

    Raises:
        BundleIntegrityError: the folder holds a symlink or something not a plain file.
    """
    folder = Path(folder)
    found = []
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise BundleIntegrityError(f"{folder}: {name} is not a plain file")
        if path.is_file() and name != MANIFEST_FILE:
            found.append(name)
    return found


def write_manifest(folder: Path, metadata: dict[str, Any]) -> dict[str, Any]:
    """Write ``folder/manifest.json``: ``metadata`` plus every file's path, bytes and sha256."""
    folder = Path(folder)
    files = [
        {
            "path": name,
            "bytes": (folder / name).stat().st_size,
            "sha256": sha256_file(folder / name),
        }
        for name in bundle_files(folder)
    ]
    manifest = {"schema_version": SCHEMA_VERSION, **metadata, "files": files}
    missing = set(METADATA_KEYS) - set(manifest)
    if missing:
        raise ValueError(f"bundle metadata lacks {sorted(missing)}")
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(folder: Path) -> dict[str, Any]:
    """The parsed, schema-checked ``manifest.json`` of a bundle folder.

    Raises:
        BundleIntegrityError: the folder or manifest is missing, not JSON, or malformed.
    """
    path = Path(folder) / MANIFEST_FILE
    if not Path(folder).is_dir():
        raise BundleIntegrityError(f"{folder}: no bundle folder there")
    if not path.is_file():
        raise BundleIntegrityError(f"{path}: the bundle's manifest is missing")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleIntegrityError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(manifest, dict):
        raise BundleIntegrityError(f"{path}: not a JSON object")
    wrong = [
        key
        for key, kind in METADATA_KEYS.items()
        if not isinstance(manifest.get(key), kind) or isinstance(manifest.get(key), bool)
    ]
    if wrong:
        raise BundleIntegrityError(f"{path}: missing or mistyped keys {wrong}")
    if manifest["schema_version"] != SCHEMA_VERSION:
        raise BundleIntegrityError(
            f"{path}: schema_version {manifest['schema_version']}, this reader knows "
            f"{SCHEMA_VERSION}"
        )
    for entry in manifest["files"]:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("path"), str)
            or not isinstance(entry.get("bytes"), int)
            or not isinstance(entry.get("sha256"), str)
        ):
            raise BundleIntegrityError(f"{path}: malformed file entry {entry!r}")
        _relative(entry["path"])
    required = set(FILES.values()) - {entry["path"] for entry in manifest["files"]}
    if required:
        raise BundleIntegrityError(f"{path}: the manifest lacks required files {sorted(required)}")
    return manifest


def verify_bundle(folder: Path) -> dict[str, Any]:
    """Check every file of a bundle against its manifest; return the manifest.

    Sizes are compared first (a truncated file is named as such without hashing), then
    sha256 digests. Files the manifest does not list are refused too: a bundle is
    immutable, so an extra file means something wrote into it after export.

    Raises:
        BundleIntegrityError: naming the first file that is missing, unlisted, truncated
            or altered, or a required file the manifest lacks.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    listed = {entry["path"]: entry for entry in manifest["files"]}
    present = set(bundle_files(folder))
    unlisted = sorted(present - set(listed))
    if unlisted:
        raise BundleIntegrityError(f"{folder}: files not in the manifest: {unlisted}")
    for name, entry in listed.items():
        path = folder / name
        if name not in present:
            raise BundleIntegrityError(f"{path}: listed in the manifest but missing")
        size = path.stat().st_size
        if size != entry["bytes"]:
            state = "truncated" if size < entry["bytes"] else "larger than recorded"
            raise BundleIntegrityError(
                f"{path}: {size} bytes, the manifest records {entry['bytes']} ({state})"
            )
        if sha256_file(path) != entry["sha256"]:
            raise BundleIntegrityError(f"{path}: sha256 does not match the manifest (altered)")
    return manifest


def _write(path: Path, content: Content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, np.ndarray):
        np.save(path, content, allow_pickle=False)
    else:
        faiss.write_index(content, str(path))


def stage_bundle(root: Path, version: str, contents: BundleContents) -> tuple[Path, Path]:
    """Write ``contents`` and its manifest into a fresh hidden folder under ``root``.

    Returns:
        ``(staging, target)``: the written folder and ``root/version``, where ``publish``
        moves it once it has been checked.

    Raises:
        FileExistsError: ``root/version`` exists already (bundles are never overwritten).
    """
    target = Path(root) / version
    if target.exists():
        raise FileExistsError(
            f"{target}: a bundle of this version exists; bundles are never overwritten"
        )
    staging = Path(root) / f".{version}.{uuid.uuid4().hex}.partial"
    staging.mkdir(parents=True)
    try:
        for name, content in contents.files.items():
            _write(staging / _relative(name), content)
        write_manifest(staging, {"bundle_version": version, **contents.metadata})
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging, target


def publish(staging: Path, target: Path) -> Path:
    """Rename a complete, checked ``staging`` folder to ``target``, never replacing one."""
    if Path(target).exists():
        shutil.rmtree(staging, ignore_errors=True)
        raise FileExistsError(
            f"{target}: a bundle of this version exists; bundles are never overwritten"
        )
    os.rename(staging, target)
    return Path(target)
