"""A versioned folder of text files (run files, qrels, a report page, an audit kit)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path, PurePosixPath

from kedro_datasets._typing import JSONPreview

from expressive_retrieval.datasets._local_versioned import LocalVersionedDataset


def _relative(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"TextFilesDataset: {name!r} is not a relative path inside the folder")
    return path


class TextFilesDataset(LocalVersionedDataset[dict[str, str], dict[str, str]]):
    """Saves and loads ``{relative path: text}``, e.g. ``{"clip_to_clip/cosine.trec": ...}``.

    ``filepath`` names a folder. Each version is written under a temporary name and
    renamed, so only complete versions are ever listed; files are UTF-8.
    """

    def load(self) -> dict[str, str]:
        folder = Path(self._get_load_path())
        return {
            path.relative_to(folder).as_posix(): path.read_text(encoding="utf-8")
            for path in sorted(folder.rglob("*"))
            if path.is_file()
        }

    def preview(self, files: int = 20, lines: int = 10) -> JSONPreview:
        """``{path: its first lines}`` of the first ``files`` files, for kedro-viz."""
        folder = Path(self._get_load_path())
        paths = [p for p in sorted(folder.rglob("*")) if p.is_file()][:files]
        heads = {}
        for path in paths:
            with path.open(encoding="utf-8") as handle:
                heads[path.relative_to(folder).as_posix()] = "".join(
                    line for _, line in zip(range(lines), handle, strict=False)
                )
        return JSONPreview(json.dumps(heads))

    def save(self, data: dict[str, str]) -> None:
        folder = Path(self._get_save_path())
        staging = folder.with_name(f".{folder.name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        for name, text in data.items():
            target = staging / _relative(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        staging.mkdir(parents=True, exist_ok=True)
        if folder.exists():  # unversioned: replace the previous folder
            shutil.rmtree(folder)
        staging.rename(folder)
