"""Bundles in object storage: publish a bundle folder to an fsspec URL; fetch one into a
local cache keyed by ``bundle_sha256`` (docs/design.md, "Bundle").

Needs the ``[s3]`` extra (fsspec, s3fs) for ``s3://`` URLs; any fsspec URL works.
Credentials come from fsspec's own chain (for S3: the standard AWS chain — environment,
shared config, instance profile), never from a bundle, and are never logged.

Layout under a publication prefix::

    <prefix>/<bundle_version>/...    every file, README.md, then manifest.json last
    <prefix>/LATEST                  {"bundle_version", "bundle_sha256"}, moved last

A bundle is there once its ``manifest.json`` is; a publish interrupted before it leaves
objects no loader reads as a bundle, and ``LATEST`` moves only after what landed has been
read back and verified.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from expressive_retrieval.serving.bundle import (
    MANIFEST_FILE,
    README_FILE,
    BundleIntegrityError,
    bundle_sha256,
    parse_manifest,
    readme_text,
    rename_into_place,
    staging_folder,
    verify_bundle,
)
from expressive_retrieval.vectors.integrity import CHUNK

logger = logging.getLogger(__name__)

LATEST_FILE = "LATEST"
CACHE_ENV = "EXPRESSIVE_RETRIEVAL_CACHE"


def default_cache() -> Path:
    """``$EXPRESSIVE_RETRIEVAL_CACHE``, else ``~/.cache/expressive_retrieval/bundles``."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache/expressive_retrieval/bundles"


def _filesystem(url: str, storage_options: Mapping[str, Any] | None) -> tuple[Any, str]:
    try:
        import fsspec
    except ImportError as error:  # pragma: no cover - the [s3] extra is missing
        raise ImportError(
            "bundles at URLs need fsspec (and s3fs for s3://): "
            'pip install "expressive_retrieval[s3]"'
        ) from error
    fs, root = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    return fs, root.rstrip("/")


def _remote_sha256(fs: Any, path: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with fs.open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _files(manifest: Mapping[str, Any]) -> list[str]:
    readme = [README_FILE] if manifest["schema_version"] >= 2 else []  # version 1 had none
    return [entry["path"] for entry in manifest["files"]] + readme


def publish_bundle(
    folder: str | os.PathLike[str], url: str, storage_options: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """Publish a verified bundle folder under the prefix ``url``; return where it landed.

    Uploads every file and the README, then the manifest; reads everything back and
    checks sizes and sha256 against the manifest; only then moves ``<url>/LATEST`` to
    it. Publishing the same bundle again re-verifies it and moves ``LATEST``; another
    bundle under an existing version is refused (bundles are immutable).

    Raises:
        BundleIntegrityError: the local bundle does not verify, or what landed differs.
        FileExistsError: another bundle already has this version under ``url``.
    """
    folder = Path(folder)
    manifest = verify_bundle(folder)
    digest, version = bundle_sha256(manifest), manifest["bundle_version"]
    fs, prefix = _filesystem(url, storage_options)
    target = f"{prefix}/{version}"
    if fs.exists(f"{target}/{MANIFEST_FILE}"):
        there = parse_manifest(fs.cat_file(f"{target}/{MANIFEST_FILE}"), f"{url}/{version}")
        if bundle_sha256(there) != digest:
            raise FileExistsError(
                f"{url}/{version}: another bundle (bundle_sha256 {bundle_sha256(there)}) is "
                "published under this version; bundles are never overwritten"
            )
        logger.info("Bundle %s is already at %s/%s; re-verifying it", version, url, version)
    else:
        for name in [*_files(manifest), MANIFEST_FILE]:
            parent = f"{target}/{name}".rsplit("/", 1)[0]
            fs.makedirs(parent, exist_ok=True)
            fs.put_file(str(folder / name), f"{target}/{name}")
    fs.invalidate_cache()
    _check_landed(fs, target, manifest, f"{url}/{version}")
    pointer = {"bundle_version": version, "bundle_sha256": digest}
    fs.pipe_file(f"{prefix}/{LATEST_FILE}", (json.dumps(pointer) + "\n").encode())
    logger.info("Published bundle %s (%s) to %s/%s", version, digest, url, version)
    return {"url": f"{url.rstrip('/')}/{version}", **pointer}


def _check_landed(fs: Any, target: str, manifest: Mapping[str, Any], where: str) -> None:
    """Read every published object back and compare it with the manifest."""
    landed = parse_manifest(fs.cat_file(f"{target}/{MANIFEST_FILE}"), f"{where}/{MANIFEST_FILE}")
    if bundle_sha256(landed) != bundle_sha256(manifest):
        raise BundleIntegrityError(f"{where}/{MANIFEST_FILE}: differs from the published one")
    expected = {entry["path"]: (entry["sha256"], entry["bytes"]) for entry in manifest["files"]}
    if README_FILE in _files(manifest):
        readme = readme_text(manifest).encode()
        expected[README_FILE] = (hashlib.sha256(readme).hexdigest(), len(readme))
    for name, recorded in expected.items():
        if _remote_sha256(fs, f"{target}/{name}") != recorded:
            raise BundleIntegrityError(f"{where}/{name}: what landed differs from the bundle")


def _latest(fs: Any, prefix: str, url: str) -> tuple[str, str]:
    """``(bundle_version, bundle_sha256)`` that ``<prefix>/LATEST`` names."""
    try:
        pointer = json.loads(fs.cat_file(f"{prefix}/{LATEST_FILE}"))
        return str(pointer["bundle_version"]), str(pointer["bundle_sha256"])
    except FileNotFoundError:
        raise BundleIntegrityError(f"{url}/{LATEST_FILE}: no bundle published there") from None
    except (ValueError, KeyError, TypeError) as error:
        raise BundleIntegrityError(f"{url}/{LATEST_FILE}: malformed ({error})") from error


def fetch_bundle(
    url: str,
    latest: bool = False,
    expected_sha256: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Path:
    """The local cache folder of the bundle at ``url`` (``<prefix>`` with ``latest``),
    downloaded and fully verified first if the cache lacks it.

    The cache holds one folder per ``bundle_sha256``, renamed into place only once
    complete and verified; a half-written one (a killed download) is never used and is
    removed by the next fetch. A pinned (``expected_sha256``) or ``LATEST`` bundle
    already cached is used without downloading anything else.

    Raises:
        BundleIntegrityError: no bundle there (no manifest: not a bundle, or a publish
            that did not finish), another ``bundle_sha256`` than pinned, or a downloaded
            file that does not match the manifest.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache()
    fs, root = _filesystem(url, storage_options)
    want = expected_sha256.strip().lower() if expected_sha256 else None
    if latest:
        version, pointed = _latest(fs, root, url)
        if want and pointed != want:
            raise BundleIntegrityError(
                f"{url}/{LATEST_FILE}: names bundle_sha256 {pointed}, expected {want}"
            )
        root, url, want = f"{root}/{version}", f"{url.rstrip('/')}/{version}", pointed
    if want and (cache / want).is_dir():
        return cache / want
    try:
        data = fs.cat_file(f"{root}/{MANIFEST_FILE}")
    except FileNotFoundError:
        raise BundleIntegrityError(
            f"{url}: no {MANIFEST_FILE} there (not a bundle, or a publish that did not finish)"
        ) from None
    manifest = parse_manifest(data, f"{url}/{MANIFEST_FILE}")
    digest = bundle_sha256(manifest)
    if want and digest != want:
        raise BundleIntegrityError(f"{url}: bundle_sha256 is {digest}, expected {want}")
    entry = cache / digest
    if entry.is_dir():
        return entry
    with staging_folder(cache, digest) as staging:
        (staging / MANIFEST_FILE).write_bytes(data)
        for name in _files(manifest):
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            try:
                fs.get_file(f"{root}/{name}", str(staging / name))
            except FileNotFoundError:
                raise BundleIntegrityError(f"{url}/{name}: listed but missing") from None
        try:
            verify_bundle(staging, content=True, expected_sha256=digest)
        except BundleIntegrityError as error:
            raise BundleIntegrityError(f"{url}: refused ({error})") from error
        with contextlib.suppress(FileExistsError):  # another process cached it meanwhile
            rename_into_place(staging, entry)
    logger.info("Cached bundle %s from %s in %s", manifest["bundle_version"], url, entry)
    return entry
