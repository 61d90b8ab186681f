"""``labels_and_splits``: wall time on the default catalogue, peak RSS at 1x and 10x.

Targets (issue 2): under 30 s at 1x on 2 cores; peak RSS at 10x no more than 1.5x that
at 1x (segments are memory-mapped and streamed).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml

from benchmarks.harness import measured, write_result
from benchmarks.scratch import REPO, ScratchProject

DEFAULT_GROUPS = yaml.safe_load((REPO / "conf/base/parameters_synthetic_data.yml").read_text())[
    "synthetic_data"
]["num_groups"]


def main() -> None:
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for scale in (1, 10):
            root = Path(tmp) / f"x{scale}"
            ScratchProject(
                root,
                {
                    "synthetic_data": {"num_groups": DEFAULT_GROUPS * scale},
                    "oracle_scorer": {"progress": False},
                },
            )
            generate = measured(
                "benchmarks.scratch:run_pipelines",
                root=str(root),
                pipelines=["synthetic_data"],
            )
            labels = measured(
                "benchmarks.scratch:run_pipelines",
                root=str(root),
                pipelines=["labels_and_splits"],
            )
            corpus_mb = (
                sum(p.stat().st_size for p in (root / "data/01_raw/segments").iterdir()) / 2**20
            )
            runs[f"{scale}x"] = {
                "tracks": DEFAULT_GROUPS * scale * 6,
                "segments_on_disk_mb": round(corpus_mb, 1),
                "synthetic_data_wall_s": generate["wall_s"],
                "labels_and_splits_wall_s": labels["wall_s"],
                "labels_and_splits_peak_rss_mb": labels["peak_rss_mb"],
            }
    ratio = (
        runs["10x"]["labels_and_splits_peak_rss_mb"] / runs["1x"]["labels_and_splits_peak_rss_mb"]
    )
    write_result(
        "labels_and_splits",
        {
            "runs": runs,
            "peak_rss_ratio_10x_over_1x": round(ratio, 3),
            "targets": {"wall_s_1x_max": 30, "peak_rss_ratio_max": 1.5},
            "passed": runs["1x"]["labels_and_splits_wall_s"] < 30 and ratio <= 1.5,
        },
    )


if __name__ == "__main__":
    main()
