"""The artifact bundle: its layout, manifest, verification and writing.

The layout is the contract of docs/design.md, "Bundle".

Kedro-free: the export pipeline writes bundles with it and the serving API reads them, so
the layout and the checks live in one place. A bundle is immutable: ``manifest.json``
(checked against ``manifest.schema.json``) lists every other file with its size and
sha256, ``bundle_sha256`` (one digest of the manifest's canonical form, which holds every
file's path and sha256) names the bundle exactly, and ``README.md`` shows it. A bundle is
refused when a listed file is missing, truncated or altered, when a file is not listed,
or when the manifest itself is malformed.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import faiss
import jsonschema
import numpy as np

from expressive_retrieval.vectors.integrity import IntegrityError, sha256_file

logger = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
README_FILE = "README.md"
SCHEMA_FILE = "manifest.schema.json"
SCHEMA_VERSION = 2  # written; version 1 (before release and README.md) is still read
READABLE_VERSIONS = (1, 2)
PARTIAL_SUFFIX = ".partial"
RELEASES = ("candidate", "approved", "rejected")

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


def release_in(manifest: Mapping[str, Any]) -> str:
    """The manifest's ``release``; a version-1 manifest predates it: derived from its gates."""
    return manifest.get("release") or release_of(manifest["evaluation_gates"])


def release_of(gates: Mapping[str, str]) -> str:
    """``rejected`` if a gate failed, ``approved`` if every gate passed (or does not apply
    to the catalogue), else ``candidate``."""
    statuses = set(gates.values())
    if "failed" in statuses:
        return "rejected"
    return "approved" if statuses - {"not_applicable"} == {"passed"} else "candidate"


@functools.cache
def manifest_schema() -> dict[str, Any]:
    """The JSON Schema of ``manifest.json`` shipped in the package."""
    text = resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    return json.loads(text)


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    schema = manifest_schema()
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    return validator(schema)


def check_manifest(manifest: Any, where: str) -> dict[str, Any]:
    """``manifest`` if it satisfies the schema and names only paths inside the bundle.

    Raises:
        BundleIntegrityError: naming the first offending field, its value and the rule.
    """
    error = jsonschema.exceptions.best_match(_validator().iter_errors(manifest))
    if error is not None:
        rule = f"{error.validator}: {json.dumps(error.validator_value)}"
        if error.validator in {"required", "additionalProperties"}:
            rule = error.message
        value = json.dumps(error.instance)
        value = value if len(value) <= 80 else value[:77] + "..."
        raise BundleIntegrityError(
            f"{where}: field {error.json_path} = {value} breaks the manifest schema ({rule})"
        )
    for entry in manifest["files"]:
        _relative(entry["path"])
    required = set(FILES.values()) - {entry["path"] for entry in manifest["files"]}
    if required:
        raise BundleIntegrityError(f"{where}: the manifest lacks required files {sorted(required)}")
    return manifest


def canonical(manifest: Mapping[str, Any]) -> bytes:
    """The manifest's canonical form: sorted keys, no whitespace, UTF-8."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def bundle_sha256(manifest: Mapping[str, Any]) -> str:
    """The bundle's name-by-content: sha256 of the canonical manifest, whose ``files`` holds
    every file's path, size and sha256 (so no file can change without changing it)."""
    return hashlib.sha256(canonical(manifest)).hexdigest()


def readme_text(manifest: Mapping[str, Any]) -> str:
    """The bundle's ``README.md``: what it is and how to pin it (derived from the manifest)."""
    gates = ", ".join(f"{g}: {s}" for g, s in sorted(manifest["evaluation_gates"].items()))
    return (
        f"# Expressive Retrieval bundle {manifest['bundle_version']}\n\n"
        f"- bundle_sha256: `{bundle_sha256(manifest)}`\n"
        f"- release: {manifest['release']}\n"
        f"- dataset_version: {manifest['dataset_version']}\n"
        f"- evaluation gates: {gates or 'none'}\n"
        f"- created_at: {manifest['created_at']}, git_commit: {manifest['git_commit']}\n\n"
        'Pin it: `load_bundle(path, expected_sha256="<bundle_sha256>")` or\n'
        "`expressive-retrieval verify <path> --expect-sha256 <bundle_sha256>`.\n"
        "This file is derived from manifest.json and checked against it on load.\n"
    )


def bundle_files(folder: Path) -> list[str]:
    """Relative paths of every file in ``folder`` but the manifest and README, sorted.

    Raises:
        BundleIntegrityError: the folder holds a symlink or something not a plain file.
    """
    folder = Path(folder)
    found = []
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise BundleIntegrityError(f"{folder}: {name} is not a plain file")
        if path.is_file() and name not in {MANIFEST_FILE, README_FILE}:
            found.append(name)
    return found


def write_manifest(folder: Path, metadata: dict[str, Any]) -> dict[str, Any]:
    """Write ``folder/manifest.json`` (``metadata`` plus every file's path, bytes and
    sha256, checked against the schema) and the ``README.md`` that shows its digest."""
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
    try:
        check_manifest(manifest, f"{folder / MANIFEST_FILE}")
    except BundleIntegrityError as error:
        raise ValueError(f"bundle metadata: {error}") from None
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    (folder / README_FILE).write_text(readme_text(manifest))
    return manifest


def parse_manifest(data: bytes, where: str) -> dict[str, Any]:
    """A schema-checked manifest from the bytes of ``manifest.json``.

    Raises:
        BundleIntegrityError: not JSON, or not a valid manifest (naming field and rule).
    """
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleIntegrityError(f"{where}: not valid JSON ({error})") from error
    if isinstance(manifest, dict) and manifest.get("schema_version") not in READABLE_VERSIONS:
        raise BundleIntegrityError(
            f"{where}: schema_version {manifest.get('schema_version')!r}, this reader knows "
            f"{list(READABLE_VERSIONS)}"
        )
    return check_manifest(manifest, where)


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
    return parse_manifest(path.read_bytes(), str(path))


def verify_bundle(
    folder: Path, content: bool = True, expected_sha256: str | None = None
) -> dict[str, Any]:
    """Check a bundle folder against its manifest; return the manifest.

    Always: the manifest's schema, ``bundle_sha256`` against ``expected_sha256`` (when
    given), no unlisted file, every listed file present with its recorded size, and
    ``README.md`` against the manifest. With ``content``, also every file's sha256. Files
    the manifest does not list are refused: a bundle is immutable, so an extra file means
    something wrote into it after export.

    Raises:
        BundleIntegrityError: naming the first file that is missing, unlisted, truncated
            or altered, the manifest field that breaks the schema, or the digest mismatch.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    digest = bundle_sha256(manifest)
    if expected_sha256 is not None and digest != expected_sha256.strip().lower():
        raise BundleIntegrityError(
            f"{folder}: bundle_sha256 is {digest}, expected {expected_sha256} (another bundle)"
        )
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
    for name, entry in listed.items() if content else ():
        if sha256_file(folder / name) != entry["sha256"]:
            raise BundleIntegrityError(
                f"{folder / name}: sha256 does not match the manifest (altered)"
            )
    readme = folder / README_FILE
    if manifest["schema_version"] >= 2 and (
        not readme.is_file() or readme.read_bytes() != readme_text(manifest).encode()
    ):
        raise BundleIntegrityError(f"{readme}: missing or does not match manifest.json")
    return manifest


def _write(path: Path, content: Content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, np.ndarray):
        np.save(path, content, allow_pickle=False)
    else:
        faiss.write_index(content, str(path))


def try_lock(folder: Path) -> int | None:
    """An fd holding an exclusive ``flock`` on ``folder``, or None if another process
    holds it. The kernel drops the lock when its holder dies, even by SIGKILL."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def remove_stale_partials(root: Path) -> list[Path]:
    """Remove ``root/.*.partial`` folders whose writer is gone (no process holds their
    lock, e.g. an export killed mid-write); log and return them. Live ones are kept."""
    removed = []
    for folder in sorted(Path(root).glob(f".*{PARTIAL_SUFFIX}")):
        if not folder.is_dir() or folder.is_symlink():
            continue
        fd = try_lock(folder)
        if fd is None:
            continue
        try:
            shutil.rmtree(folder)
        finally:
            os.close(fd)
        logger.warning("Removed %s, left by an interrupted write", folder)
        removed.append(folder)
    return removed


@contextlib.contextmanager
def staging_folder(root: Path, name: str) -> Iterator[Path]:
    """A fresh, locked ``root/.<name>.<random>.partial`` folder, removed unless the body
    renamed it away; stale ones of earlier, killed writers are removed first."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(root)
    # Locked under a name the stale sweep ignores, then renamed (the lock stays with it).
    fresh = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".new", dir=root))
    fd = try_lock(fresh)
    assert fd is not None, "a folder made just now is locked by nobody else"
    staging = fresh.rename(root / f".{name}.{uuid.uuid4().hex}{PARTIAL_SUFFIX}")
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        os.close(fd)


def rename_into_place(staging: Path, target: Path) -> Path:
    """Rename a complete, checked ``staging`` folder to ``target``, never replacing one."""
    if Path(target).exists():
        raise FileExistsError(
            f"{target}: a bundle of this version exists; bundles are never overwritten"
        )
    os.rename(staging, target)
    return Path(target)


def write_bundle(
    root: Path, version: str, contents: BundleContents, check: Callable[[Path], object]
) -> Path:
    """Write ``contents`` and its manifest as ``root/version``, whole or not at all.

    Files go to a locked hidden staging folder, ``check`` (e.g. a verified load) runs on
    it, and only then is it renamed into place. Stale staging folders of killed writers
    are removed (and logged) first.

    Raises:
        FileExistsError: ``root/version`` exists already (bundles are never overwritten).
    """
    target = Path(root) / version
    if target.exists():
        raise FileExistsError(
            f"{target}: a bundle of this version exists; bundles are never overwritten"
        )
    with staging_folder(root, version) as staging:
        for name, content in contents.files.items():
            _write(staging / _relative(name), content)
        write_manifest(staging, {"bundle_version": version, **contents.metadata})
        check(staging)
        return rename_into_place(staging, target)
