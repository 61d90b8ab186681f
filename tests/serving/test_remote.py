"""Publishing to, and loading from, a real S3-compatible server (SeaweedFS, no mock)."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import numpy as np
import pytest
import s3fs
from kedro.io import Version

from expressive_retrieval.datasets import BundleDataset
from expressive_retrieval.pipelines.export.nodes import assemble_bundle, publish_bundle_node
from expressive_retrieval.serving import BundleIntegrityError, load_bundle
from expressive_retrieval.serving.bundle import FILES, MANIFEST_FILE, bundle_sha256
from expressive_retrieval.serving.cli import main
from expressive_retrieval.serving.remote import LATEST_FILE, publish_bundle

REPORT = "evaluation/report.html"


@pytest.fixture(scope="module")
def bucket(s3_server) -> str:
    """One bucket (a SeaweedFS collection, which takes volumes of its own) for the module."""
    s3fs.S3FileSystem().mkdir("bundles")
    return "bundles"


@pytest.fixture
def prefix(bucket: str) -> str:
    """A fresh publication prefix."""
    return f"s3://{bucket}/{uuid.uuid4().hex[:12]}"


def _fs() -> s3fs.S3FileSystem:
    fs = s3fs.S3FileSystem()
    fs.invalidate_cache()
    return fs


def _query(tiny_bundle) -> np.ndarray:
    return tiny_bundle.segments["track_07"][:4]


@pytest.fixture(scope="module")
def second_bundle(tiny_bundle, tmp_path_factory) -> Path:
    """Another bundle version of the same artifacts."""
    root = tmp_path_factory.mktemp("second") / "export"
    version = "2026-02-02T00.00.00.000Z"
    BundleDataset(path=str(root), version=Version(None, version)).save(
        assemble_bundle(**tiny_bundle.artifacts)
    )
    return root / version


def test_publish_then_load(tiny_bundle, prefix: str, tmp_path: Path, caplog, s3_server) -> None:
    caplog.set_level(logging.DEBUG)
    landed = publish_bundle(tiny_bundle.path, prefix)
    local = load_bundle(tiny_bundle.path)
    assert landed == {
        "url": f"{prefix}/{tiny_bundle.path.name}",
        "bundle_version": tiny_bundle.path.name,
        "bundle_sha256": local.bundle_sha256,
    }
    remote = load_bundle(landed["url"], cache_dir=tmp_path / "cache")
    assert remote.bundle_sha256 == local.bundle_sha256
    assert remote.folder == tmp_path / "cache" / local.bundle_sha256
    assert remote.search_clips(_query(tiny_bundle), k=5) == local.search_clips(
        _query(tiny_bundle), k=5
    )
    pointer = json.loads(_fs().cat_file(f"{prefix}/{LATEST_FILE}"))
    assert pointer == {"bundle_version": local.manifest["bundle_version"], **pointer}
    assert pointer["bundle_sha256"] == local.bundle_sha256
    # Credentials come from the environment only: never in the bundle, and the secret is
    # never logged, even at DEBUG (botocore's own debug lines show the access key id).
    assert s3_server.secret_key not in caplog.text
    for path in remote.folder.rglob("*"):
        assert not path.is_file() or s3_server.secret_key.encode() not in path.read_bytes()


def test_load_by_latest_follows_the_pointer(
    tiny_bundle, second_bundle: Path, prefix: str, tmp_path: Path
) -> None:
    publish_bundle(tiny_bundle.path, prefix)
    first = load_bundle(prefix, latest=True, cache_dir=tmp_path)
    assert first.manifest["bundle_version"] == tiny_bundle.path.name
    publish_bundle(second_bundle, prefix)
    second = load_bundle(prefix, latest=True, cache_dir=tmp_path)
    assert second.manifest["bundle_version"] == second_bundle.name
    assert second.bundle_sha256 != first.bundle_sha256
    with pytest.raises(BundleIntegrityError, match="expected"):
        load_bundle(prefix, latest=True, cache_dir=tmp_path, expected_sha256=first.bundle_sha256)


def test_a_second_load_is_served_from_the_cache(tiny_bundle, prefix: str, tmp_path: Path) -> None:
    url = publish_bundle(tiny_bundle.path, prefix)["url"]
    first = load_bundle(url, cache_dir=tmp_path / "cache")
    _fs().rm(f"{url.removeprefix('s3://')}/{FILES['clip_vectors']}")  # gone from the server
    with pytest.raises(BundleIntegrityError, match=r"clip_vectors\.npy: listed but missing"):
        load_bundle(url, cache_dir=tmp_path / "elsewhere")
    again = load_bundle(url, cache_dir=tmp_path / "cache")
    assert again.folder == first.folder and again.bundle_sha256 == first.bundle_sha256
    pinned = load_bundle(url, cache_dir=tmp_path / "cache", expected_sha256=first.bundle_sha256)
    assert pinned.folder == first.folder


def test_an_object_altered_on_the_server_is_refused(
    tiny_bundle, prefix: str, tmp_path: Path
) -> None:
    url = publish_bundle(tiny_bundle.path, prefix)["url"]
    key = f"{url.removeprefix('s3://')}/{REPORT}"
    fs = _fs()
    fs.pipe_file(key, fs.cat_file(key).replace(b"html", b"HTML"))  # same size, other bytes
    cache = tmp_path / "cache"
    with pytest.raises(BundleIntegrityError, match=rf"{REPORT}: sha256 .*altered"):
        load_bundle(url, cache_dir=cache)
    assert list(cache.iterdir()) == []  # nothing half-made is kept
    with pytest.raises(BundleIntegrityError, match="what landed differs"):
        publish_bundle(tiny_bundle.path, prefix)  # a republish reads it back and refuses


def test_an_interrupted_publish_is_never_seen_as_a_bundle(
    tiny_bundle, second_bundle: Path, prefix: str, tmp_path: Path, monkeypatch
) -> None:
    publish_bundle(tiny_bundle.path, prefix)
    fs = s3fs.S3FileSystem()  # fsspec caches it: the instance publish_bundle uses
    put_file = fs.put_file

    def dies_at_the_manifest(local, remote, **kwargs):
        if remote.endswith(MANIFEST_FILE):
            raise ConnectionError("network gone")
        return put_file(local, remote, **kwargs)

    monkeypatch.setattr(fs, "put_file", dies_at_the_manifest)
    with pytest.raises(ConnectionError):
        publish_bundle(second_bundle, prefix)
    monkeypatch.undo()
    assert _fs().exists(f"{prefix}/{second_bundle.name}/{FILES['index']}")  # files landed...
    with pytest.raises(BundleIntegrityError, match=r"no manifest\.json there"):
        load_bundle(f"{prefix}/{second_bundle.name}", cache_dir=tmp_path)  # ...no bundle
    latest = load_bundle(prefix, latest=True, cache_dir=tmp_path)
    assert latest.manifest["bundle_version"] == tiny_bundle.path.name  # LATEST did not move
    publish_bundle(second_bundle, prefix)  # a rerun completes it
    assert load_bundle(prefix, latest=True, cache_dir=tmp_path).folder.name == bundle_sha256(
        json.loads((second_bundle / MANIFEST_FILE).read_text())
    )


def test_a_half_written_cache_entry_is_never_used(tiny_bundle, prefix: str, tmp_path: Path) -> None:
    url = publish_bundle(tiny_bundle.path, prefix)["url"]
    digest = load_bundle(tiny_bundle.path).bundle_sha256
    stale = tmp_path / f".{digest}.0123.partial"  # as a killed download leaves it
    (stale / "projection_retriever").mkdir(parents=True)
    (stale / FILES["index"]).write_bytes(b"half")
    retriever = load_bundle(url, cache_dir=tmp_path)
    assert retriever.folder == tmp_path / digest and not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [digest]


def test_the_cli_publishes_and_the_pipeline_publishes_only_passing_bundles(
    tiny_bundle, prefix: str, tmp_path: Path, capsys
) -> None:
    main(["publish", str(tiny_bundle.path), prefix])
    landed = json.loads(capsys.readouterr().out)
    assert landed["bundle_version"] == tiny_bundle.path.name
    main(["verify", prefix, "--latest", "--expect-sha256", landed["bundle_sha256"]])
    assert json.loads(capsys.readouterr().out)["bundle_sha256"] == landed["bundle_sha256"]
    retriever = load_bundle(tiny_bundle.path)
    other = f"{prefix}-pipeline"
    assert publish_bundle_node(retriever, {"publish_to": None}) is None
    retriever.release = "rejected"  # as a bundle that failed a gate
    assert publish_bundle_node(retriever, {"publish_to": other}) is None
    assert not _fs().exists(f"{other}/{LATEST_FILE}")
    retriever.release = "approved"
    assert publish_bundle_node(retriever, {"publish_to": other})["url"].startswith(other)
    assert _fs().exists(f"{other}/{LATEST_FILE}")
