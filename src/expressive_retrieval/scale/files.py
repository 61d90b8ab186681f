"""Files that tasks read and write, by local path or fsspec URL (``s3://...``)."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Iterable
from typing import Any

import fsspec
import numpy as np

BLOCK = 1 << 20


def _fs(url: str) -> tuple[Any, str]:
    return fsspec.core.url_to_fs(url)


def _parent(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[0]


def is_local(url: str) -> bool:
    return fsspec.utils.get_protocol(url) == "file"


def join(root: str, name: str) -> str:
    return f"{str(root).rstrip('/')}/{name}"


def exists(url: str) -> bool:
    fs, path = _fs(url)
    return fs.exists(path)


def load_npy(url: str) -> np.ndarray:
    """A ``.npy`` array: memory-mapped when local, read whole from object storage."""
    if is_local(url):
        return np.load(_fs(url)[1], mmap_mode="r", allow_pickle=False)
    with fsspec.open(url, "rb") as handle:
        return np.load(io.BytesIO(handle.read()), allow_pickle=False)


def write_bytes(url: str, data: bytes) -> None:
    """Write ``data`` whole: under a temporary name first, so a reader never sees a part."""
    fs, path = _fs(url)
    fs.makedirs(_parent(path), exist_ok=True)
    if not is_local(url):  # object stores publish a key only once it is complete
        fs.pipe_file(path, data)
        return
    partial = f"{path}.{uuid.uuid4().hex}.partial"
    fs.pipe_file(partial, data)
    fs.mv(partial, path)


def save_npy(url: str, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    write_bytes(url, buffer.getvalue())


def write_json(url: str, data: dict[str, Any]) -> None:
    write_bytes(url, json.dumps(data, indent=1, sort_keys=True).encode())


def read_json(url: str) -> dict[str, Any] | None:
    """The JSON object at ``url``, or None when it is missing or unreadable."""
    try:
        with fsspec.open(url, "rb") as handle:
            return json.loads(handle.read())
    except (OSError, ValueError):
        return None


def sha256_url(url: str) -> str:
    digest = hashlib.sha256()
    with fsspec.open(url, "rb") as handle:
        while block := handle.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def stamp(url: str) -> str:
    """``"size:mtime"`` of one file (no data read): what a shard's key depends on."""
    fs, path = _fs(url)
    info = fs.info(path)
    return f"{info.get('size', '')}:{info.get('mtime', info.get('LastModified', ''))}"


def fingerprints(root: str, names: Iterable[str], suffix: str) -> dict[str, str]:
    """``{name: "size:mtime"}`` of ``root/<name><suffix>`` from one listing (no data read)."""
    fs, path = _fs(root)
    listed = {
        entry["name"].rsplit("/", 1)[-1]: entry for entry in fs.ls(path, detail=True) if entry
    }
    result = {}
    for name in names:
        entry = listed.get(f"{name}{suffix}", {})
        stamp = entry.get("mtime", entry.get("LastModified", entry.get("ETag", "")))
        result[name] = f"{entry.get('size', '')}:{stamp}"
    return result


def remove_siblings(url: str) -> None:
    """Delete every folder beside ``url`` (older staging of the same step)."""
    fs, path = _fs(url)
    parent = _parent(path)
    if not fs.exists(parent):
        return
    for entry in fs.ls(parent, detail=False):
        if entry.rstrip("/") != path.rstrip("/"):
            fs.rm(entry, recursive=True)
