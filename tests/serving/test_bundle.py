"""Bundles are complete, exactly laid out, immutable, and refused when tampered with."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import faiss
import jsonschema
import numpy as np
import pytest
from kedro.io import DatasetError, Version

from expressive_retrieval.datasets import BundleDataset
from expressive_retrieval.pipelines.export.nodes import assemble_bundle
from expressive_retrieval.serving import BundleIntegrityError, load_bundle, verify_bundle
from expressive_retrieval.serving.bundle import (
    FILES,
    MANIFEST_FILE,
    README_FILE,
    bundle_sha256,
    manifest_schema,
    readme_text,
    release_of,
    remove_stale_partials,
    try_lock,
)
from expressive_retrieval.vectors.integrity import sha256_file
from tests.serving.conftest import with_gates

INDEX = FILES["index"]
WEIGHTS = FILES["projection_model"]


def _manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST_FILE).read_text())


def _rewrite_manifest(folder: Path, edit) -> None:
    """Edit the manifest and reseal its README, as a careful tamperer would."""
    manifest = _manifest(folder)
    edit(manifest)
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    with contextlib.suppress(KeyError):  # a manifest lacking fields has no README
        (folder / README_FILE).write_text(readme_text(manifest))


def test_manifest_lists_every_file_with_size_and_sha256(tiny_bundle) -> None:
    manifest = verify_bundle(tiny_bundle.path)
    on_disk = sorted(
        p.relative_to(tiny_bundle.path).as_posix()
        for p in tiny_bundle.path.rglob("*")
        if p.is_file() and p.name not in {MANIFEST_FILE, README_FILE}
    )
    assert [entry["path"] for entry in manifest["files"]] == on_disk
    for entry in manifest["files"]:
        path = tiny_bundle.path / entry["path"]
        assert entry["bytes"] == path.stat().st_size
        assert entry["sha256"] == sha256_file(path)
    assert set(FILES.values()) <= set(on_disk)
    assert {
        "evaluation/runs/clip_to_clip/projection_distilled_ann.trec",
        "evaluation/qrels/clip_to_clip.qrels",
        "evaluation/report.html",
        "evaluation/summary.md",
        "evaluation/audit/audit_kit.csv",
    } <= set(on_disk)
    assert manifest["bundle_version"] == tiny_bundle.path.name
    assert (manifest["L"], manifest["D"], manifest["dataset_version"]) == (5, 32, "tiny")
    assert manifest["aspects"] == ["tempo", "dynamics", "articulation"]
    assert manifest["git_commit"] and manifest["package_version"] and manifest["created_at"]
    # The index in the bundle is the one its index manifest describes.
    index_manifest = json.loads((tiny_bundle.path / FILES["index_manifest"]).read_text())
    assert index_manifest["checksums"]["index.faiss"] == sha256_file(tiny_bundle.path / INDEX)


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("target", [INDEX, WEIGHTS, FILES["clip_ids"], "evaluation/report.html"])
def test_an_altered_byte_is_refused_naming_the_file(bundle_copy: Path, target: str) -> None:
    _flip_byte(bundle_copy / target, (bundle_copy / target).stat().st_size // 2)
    with pytest.raises(BundleIntegrityError, match=rf"{target}: sha256 .*altered"):
        load_bundle(bundle_copy)


def test_a_truncated_file_is_refused(bundle_copy: Path) -> None:
    path = bundle_copy / FILES["clip_vectors"]
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(BundleIntegrityError, match=r"clip_vectors.npy: .*truncated"):
        load_bundle(bundle_copy)


def test_a_missing_file_is_refused(bundle_copy: Path) -> None:
    (bundle_copy / WEIGHTS).unlink()
    with pytest.raises(BundleIntegrityError, match=r"model.safetensors: listed .* missing"):
        load_bundle(bundle_copy)


def test_an_unlisted_file_is_refused(bundle_copy: Path) -> None:
    (bundle_copy / "projection_retriever" / "extra.bin").write_bytes(b"x")
    with pytest.raises(BundleIntegrityError, match=r"not in the manifest.*extra.bin"):
        load_bundle(bundle_copy)


def test_an_edited_manifest_is_refused(bundle_copy: Path) -> None:
    def wrong_digest(manifest: dict) -> None:
        manifest["files"][0]["sha256"] = "0" * 64

    _rewrite_manifest(bundle_copy, wrong_digest)
    with pytest.raises(BundleIntegrityError, match="altered"):
        load_bundle(bundle_copy)


def test_a_manifest_that_disagrees_with_the_model_is_refused(bundle_copy: Path) -> None:
    _rewrite_manifest(bundle_copy, lambda manifest: manifest.update(D=768))
    with pytest.raises(BundleIntegrityError, match=r"manifest\.json records L, D, aspects"):
        load_bundle(bundle_copy)


def test_a_swapped_index_is_refused_even_with_a_consistent_manifest(bundle_copy: Path) -> None:
    """Replacing index.faiss and its manifest entry still disagrees with index_manifest."""
    other = faiss.IndexFlatIP(12)
    other.add(np.eye(12, dtype=np.float32))
    faiss.write_index(other, str(bundle_copy / INDEX))

    def reseal(manifest: dict) -> None:
        for entry in manifest["files"]:
            if entry["path"] == INDEX:
                entry.update(bytes=(bundle_copy / INDEX).stat().st_size)
                entry.update(sha256=sha256_file(bundle_copy / INDEX))

    _rewrite_manifest(bundle_copy, reseal)
    verify_bundle(bundle_copy)  # every checksum matches the (resealed) manifest...
    with pytest.raises(BundleIntegrityError, match=r"index\.faiss does not match"):
        load_bundle(bundle_copy)  # ...but not the index manifest


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda folder: (folder / MANIFEST_FILE).unlink(), "manifest is missing"),
        (lambda folder: (folder / MANIFEST_FILE).write_text("{not json"), "not valid JSON"),
        (
            lambda folder: _rewrite_manifest(folder, lambda m: m.pop("dataset_version")),
            r"field \$ = .*'dataset_version' is a required property",
        ),
        (
            lambda folder: _rewrite_manifest(
                folder,
                lambda m: m["files"].append({"path": "../x", "bytes": 1, "sha256": "0" * 64}),
            ),
            r'field \$\.files\[\d+\]\.path = "\.\./x" breaks the manifest schema \(pattern',
        ),
        (
            lambda folder: _rewrite_manifest(
                folder, lambda m: m.update(files=[f for f in m["files"] if f["path"] != INDEX])
            ),
            r"manifest lacks required files \['projection_retriever/index.faiss'\]",
        ),
    ],
)
def test_a_malformed_manifest_is_refused(bundle_copy: Path, damage, message: str) -> None:
    damage(bundle_copy)
    with pytest.raises(BundleIntegrityError, match=message):
        load_bundle(bundle_copy, verify=False)


def test_a_flipped_byte_is_refused_only_with_verify(bundle_copy: Path) -> None:
    _flip_byte(
        bundle_copy / FILES["clip_vectors"],
        (bundle_copy / FILES["clip_vectors"]).stat().st_size - 3,
    )
    assert load_bundle(bundle_copy, verify=False).index.ntotal > 0
    with pytest.raises(BundleIntegrityError, match=r"clip_vectors\.npy: sha256 .*altered"):
        load_bundle(bundle_copy)


@pytest.mark.parametrize("target", [INDEX, FILES["clip_vectors"], FILES["clip_ids"], WEIGHTS])
def test_a_truncated_file_is_refused_without_verify(bundle_copy: Path, target: str) -> None:
    path = bundle_copy / target
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(BundleIntegrityError, match=rf"{target}: \d+ bytes, .* \(truncated\)"):
        load_bundle(bundle_copy, verify=False)


def test_a_bundle_is_never_overwritten(tiny_bundle, tmp_path: Path) -> None:
    root = tmp_path / "export"
    dataset = BundleDataset(path=str(root), version=Version(None, "v1"))
    contents = assemble_bundle(**tiny_bundle.artifacts)
    dataset.save(contents)
    before = _manifest(root / "v1")
    with pytest.raises(DatasetError, match="never overwritten"):
        dataset.save(contents)
    assert _manifest(root / "v1") == before
    assert sorted(p.name for p in root.iterdir()) == ["v1"]  # no staging left behind
    assert isinstance(BundleDataset(path=str(root)).load().manifest, dict)


def test_a_failed_export_publishes_nothing(tiny_bundle, tmp_path: Path) -> None:
    """A bundle whose index does not match its index manifest never appears."""
    artifacts = dict(tiny_bundle.artifacts)
    index, manifest = artifacts["clip_index"]
    tampered = {**manifest, "checksums": {**manifest["checksums"], "index.faiss": "0" * 64}}
    artifacts["clip_index"] = (index, tampered)
    root = tmp_path / "export"
    with pytest.raises(DatasetError, match=r"index\.faiss does not match"):
        BundleDataset(path=str(root), version=Version(None, "v1")).save(
            assemble_bundle(**artifacts)
        )
    assert list(root.iterdir()) == []


def test_export_refuses_artifacts_that_do_not_belong_together(tiny_bundle) -> None:
    artifacts = dict(tiny_bundle.artifacts)
    artifacts["evaluation_report"] = {"dataset_version": "other"}
    with pytest.raises(ValueError, match=r"another dataset version .*evaluation_report"):
        assemble_bundle(**artifacts)
    artifacts = dict(tiny_bundle.artifacts)
    artifacts["clip_vectors"] = np.asarray(artifacts["clip_vectors"])[::-1]
    with pytest.raises(ValueError, match="not the vectors clip_index was built from"):
        assemble_bundle(**artifacts)
    artifacts = dict(tiny_bundle.artifacts)
    artifacts["evaluation_runs"] = {"clip_to_album/x.trec": "q Q0 c 1 0.5 s\n"}
    with pytest.raises(ValueError, match="does not start with a task"):
        assemble_bundle(**artifacts)


def test_a_copied_bundle_verifies_anywhere(tiny_bundle, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_bundle.path, tmp_path / "elsewhere"))
    assert verify_bundle(copy)["bundle_version"] == tiny_bundle.path.name


def test_bundle_sha256_pins_the_bundle_and_the_readme_shows_it(bundle_copy: Path) -> None:
    manifest = verify_bundle(bundle_copy)
    digest = bundle_sha256(manifest)
    assert f"bundle_sha256: `{digest}`" in (bundle_copy / README_FILE).read_text()
    assert load_bundle(bundle_copy, expected_sha256=digest).bundle_sha256 == digest
    with pytest.raises(BundleIntegrityError, match=f"bundle_sha256 is {digest}, expected 0+"):
        load_bundle(bundle_copy, verify=False, expected_sha256="0" * 64)
    # Any edit of the manifest is another bundle, even one that keeps the files valid.
    _rewrite_manifest(bundle_copy, lambda m: m.update(created_at="2030-01-01T00:00:00+00:00"))
    assert bundle_sha256(verify_bundle(bundle_copy)) != digest
    with pytest.raises(BundleIntegrityError, match="expected"):
        load_bundle(bundle_copy, expected_sha256=digest)
    (bundle_copy / README_FILE).write_text("# edited\n")
    with pytest.raises(BundleIntegrityError, match=r"README\.md: missing or does not match"):
        load_bundle(bundle_copy, verify=False)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (("serving", "clip_hop_segments"), 0, r"\$\.serving\.clip_hop_segments = 0 .*minimum: 1"),
        (("serving", "track_scoring", "k"), 2.5, r"track_scoring\.k = 2\.5 .*type: \"integer\""),
        (("L",), True, r"\$\.L = true .*type"),
        (("release",), "shipped", r"\$\.release = \"shipped\" .*enum"),
        (("files", 0, "sha256"), "xyz", r"\$\.files\[0\]\.sha256 = \"xyz\" .*pattern"),
        (("files", 0, "bytes"), -1, r"\$\.files\[0\]\.bytes = -1 .*minimum: 0"),
        (("aspects",), [], r"\$\.aspects = \[\] .*minItems"),
        (("surprise",), 1, r"'surprise' was unexpected"),
    ],
)
def test_every_manifest_field_is_checked_against_the_schema(
    bundle_copy: Path, field: tuple, value, message: str
) -> None:
    def edit(manifest: dict) -> None:
        target = manifest
        for key in field[:-1]:
            target = target[key]
        target[field[-1]] = value

    _rewrite_manifest(bundle_copy, edit)
    with pytest.raises(BundleIntegrityError, match=message):
        load_bundle(bundle_copy, verify=False)


def test_the_shipped_schema_is_valid_and_names_every_written_field(tiny_bundle) -> None:
    schema = manifest_schema()
    jsonschema.validators.validator_for(schema).check_schema(schema)
    written = set(_manifest(tiny_bundle.path))
    assert set(schema["required"]) | set(schema["then"]["required"]) == written


@pytest.mark.parametrize(
    ("gates", "release"),
    [
        ({"ranking": "passed", "audit": "passed"}, "approved"),
        ({"ranking": "passed", "audit": "pending"}, "candidate"),
        ({"ranking": "failed", "audit": "pending"}, "rejected"),
        ({}, "candidate"),
    ],
)
def test_the_release_follows_the_gates(tiny_bundle, gates: dict, release: str) -> None:
    assert release_of(gates) == release
    artifacts = with_gates(tiny_bundle.artifacts, gates)
    artifacts["params"] = {"allow_failed_gates": True}
    assert assemble_bundle(**artifacts).metadata["release"] == release


def test_a_stale_partial_of_a_killed_export_is_removed_by_the_next(
    tiny_bundle, tmp_path: Path, caplog
) -> None:
    root = tmp_path / "export"
    script = f"""
import json, time
from pathlib import Path
from expressive_retrieval.serving.bundle import BundleContents, write_bundle
source = Path({str(tiny_bundle.path)!r})
manifest = json.loads((source / "manifest.json").read_text())
files = {{e["path"]: (source / e["path"]).read_bytes() for e in manifest["files"]}}
metadata = {{k: v for k, v in manifest.items() if k not in ("files", "schema_version", "bundle_version")}}

class Slow(dict):  # hangs after a few files, so that the kill lands mid-write
    def items(self):
        for i, item in enumerate(super().items()):
            if i == 5:
                print("writing", flush=True)
                time.sleep(120)
            yield item

write_bundle(Path({str(root)!r}), "v1", BundleContents(Slow(files), metadata), check=print)
"""
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(10)
    (stale,) = root.glob(".v1.*.partial")
    assert len(list(stale.rglob("*.*"))) == 5  # half a bundle
    live = root / ".other.0.partial"  # a concurrent export's: locked, so kept
    live.mkdir()
    lock = try_lock(live)
    caplog.set_level(logging.WARNING)
    try:
        BundleDataset(path=str(root), version=Version(None, "v1")).save(
            assemble_bundle(**tiny_bundle.artifacts)
        )
    finally:
        os.close(lock)
    assert f"Removed {stale}" in caplog.text
    assert sorted(p.name for p in root.iterdir()) == [live.name, "v1"]
    verify_bundle(root / "v1")
    assert remove_stale_partials(root) == [live]  # once its writer is gone


def test_the_bundle_preview_is_its_manifest_with_a_file_count(tiny_bundle) -> None:
    preview = json.loads(BundleDataset(path=str(tiny_bundle.path.parent)).preview())
    manifest = json.loads((tiny_bundle.path / MANIFEST_FILE).read_text())
    assert preview["num_files"] == len(manifest["files"]) and "files" not in preview
    assert preview["bundle_version"] == manifest["bundle_version"] == tiny_bundle.path.name


def test_a_version_1_bundle_still_loads_with_its_release_derived() -> None:
    """Bundles written before ``release`` and ``README.md`` (schema_version 1) still load."""
    old = Path(__file__).parents[1] / "fixtures/pre_move/bundle/2026-01-01T00.00.00.000Z"
    retriever = load_bundle(old)
    assert retriever.manifest["schema_version"] == 1 and "release" not in retriever.manifest
    assert retriever.release == "approved"  # its only gate passed
    assert not (old / README_FILE).exists()
