"""The twin set is refused, naming the rule and the ids, when it cannot be compared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from expressive_retrieval.data.segments import SegmentStore
from expressive_retrieval.data.synthetic import SyntheticConfig, generate_catalogue
from expressive_retrieval.data.twins import check_twins
from expressive_retrieval.datasets import SegmentsDataset

REPO = Path(__file__).resolve().parents[2]
ASPECTS = yaml.safe_load((REPO / "conf/base/parameters.yml").read_text())["aspects"]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("twins")
    config = SyntheticConfig(num_groups=2, dim=8, num_layers=7, twin_sources_per_group=1)
    catalogue = generate_catalogue(config, ASPECTS)
    SegmentsDataset(str(root / "segments")).save(catalogue.segments)
    SegmentsDataset(str(root / "twin_segments")).save(catalogue.twin_segments)
    return {
        "twins": catalogue.twins,
        "twin_segments": SegmentStore(root / "twin_segments"),
        "segments": SegmentStore(root / "segments"),
        "tracks": catalogue.tracks["track_id"].tolist(),
    }


def _check(written: dict, twins: pd.DataFrame, tracks: list[str] | None = None) -> None:
    check_twins(
        twins,
        written["twin_segments"],
        written["segments"],
        list(ASPECTS),
        written["tracks"] if tracks is None else tracks,
    )


def test_the_synthetic_twins_pass(written: dict) -> None:
    _check(written, written["twins"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop(columns="delta"), r"missing columns \['delta'\]"),
        (lambda t: pd.concat([t, t.iloc[:1]]), r"duplicate twin_id: \['trk00000.twin.tempo'\]"),
        (
            lambda t: t.assign(twin_id=t["twin_id"].where(t.index != 0, "nowhere")),
            r"twin_id without a file in twin_segments: \['nowhere'\]",
        ),
        (
            lambda t: t.assign(aspect=t["aspect"].replace("tempo", "swing")),
            r"aspect not one of .*: \['swing'\]",
        ),
        (lambda t: t[t["aspect"] != "timbre"], r"source without exactly one twin per aspect"),
    ],
)
def test_each_rule_names_its_ids(written: dict, change, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _check(written, change(written["twins"]))


def test_a_twin_of_an_unknown_track_is_refused(written: dict) -> None:
    with pytest.raises(ValueError, match=r"source_track_id not a track .*'trk00000'"):
        _check(written, written["twins"], tracks=written["tracks"][1:])


def test_a_twin_of_another_length_is_refused(written: dict, tmp_path: Path) -> None:
    store = written["twin_segments"]
    arrays = {t: np.load(store.path(t)) for t in store.track_ids()}
    arrays["trk00000.twin.tempo"] = arrays["trk00000.twin.tempo"][:-1]
    SegmentsDataset(str(tmp_path / "short")).save(arrays)
    with pytest.raises(ValueError, match=r"shape differs .*'trk00000.twin.tempo'"):
        check_twins(
            written["twins"],
            SegmentStore(tmp_path / "short"),
            written["segments"],
            list(ASPECTS),
            written["tracks"],
        )
