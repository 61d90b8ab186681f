"""Contract violations: one record per broken rule, and the error a failed check raises."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

MAX_LISTED_IDS = 10
CONTRACT_DOC = "docs/input_contract.md"


@dataclass(frozen=True)
class Violation:
    """One broken contract rule.

    Attributes:
        file: the offending file (as given in ``files``), a segment file or the segments folder.
        rule: a short stable rule id such as ``"track_id.unique"``.
        ids: every offending id (track ids, ``"track_id:segment_idx"``, aspects, columns).
        detail: one human sentence.
    """

    file: str
    rule: str
    ids: tuple[str, ...]
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """The violation as plain JSON-able types."""
        record = asdict(self)
        record["ids"] = list(self.ids)
        return record


def missing_columns(
    file: str, rule: str, columns: Any, required: tuple[str, ...], kind: str
) -> Violation | None:
    """A violation listing the ``required`` columns absent from ``columns``, if any."""
    missing = tuple(c for c in required if c not in columns)
    if not missing:
        return None
    return Violation(file, rule, missing, f"missing {kind} columns (need {', '.join(required)})")


class InputContractError(ValueError):
    """Raised with every violation listed: file, rule, offending ids (first 10 + 'and N more')."""

    def __init__(self, violations: list[Violation]) -> None:
        self.violations = list(violations)
        lines = [
            f"Raw inputs violate the input contract (see {CONTRACT_DOC}); "
            "nothing was written downstream."
        ]
        lines += [f"  - {v.file} [{v.rule}]: {_sentence(v.detail, v.ids)}" for v in violations]
        super().__init__("\n".join(lines))


def _sentence(detail: str, ids: tuple[str, ...]) -> str:
    """``detail`` as a sentence followed by the ids, truncated after the first ten."""
    text = detail.rstrip(".") + "."
    return f"{text} ids: {list_ids(ids)}" if ids else text


def list_ids(ids: tuple[str, ...] | list[str]) -> str:
    """The first ten ids joined by commas, then ``… and N more``."""
    shown = ", ".join(ids[:MAX_LISTED_IDS])
    rest = len(ids) - MAX_LISTED_IDS
    return f"{shown} … and {rest} more" if rest > 0 else shown


def distinct_ids(values: Any) -> tuple[str, ...]:
    """Distinct values as strings, in first-seen order."""
    return tuple(dict.fromkeys(str(v) for v in values))


def examples(found: dict[str, Any]) -> str:
    """The value of a single offender, else ``id: value`` for the first few."""
    if len(found) == 1:
        return str(next(iter(found.values())))
    items = [f"{t}: {v}" for t, v in list(found.items())[:3]]
    more = f" and {len(found) - 3} more" if len(found) > 3 else ""
    return "; ".join(items) + more


@dataclass(frozen=True)
class Unreadable:
    """What a raw entry loads as when its file cannot be parsed (``<entry>.readable``)."""

    path: str
    error: str
