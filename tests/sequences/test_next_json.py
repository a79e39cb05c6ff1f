"""``next_json`` writes exactly what pydantic would for ``NextOut``, without pydantic."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sequences.models import Allocation, Sequence
from sequences.schemas import NextOut
from sequences.service import next_json, next_out
from storage import SequenceRecord

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _seq(name: str, **config: object) -> Sequence:
    record = SequenceRecord(
        name=name, config={"start": 1, "step": 1, **config}, created_at=AT, updated_at=AT
    )
    return Sequence.from_record(record)


@pytest.mark.parametrize(
    ("seq", "alloc"),
    [
        (_seq("orders"), Allocation(1, 1, 1, "", AT)),
        (
            _seq("a.b_c-9"),
            Allocation(9_223_372_036_854_775_800, 9_223_372_036_854_775_807, 8, "", AT),
        ),
        (_seq("neg", start=-50), Allocation(-50, -41, 10, "", AT)),
        (_seq("daily", reset="daily"), Allocation(3, 3, 1, "2026-03-01", AT)),
        (_seq("fmt", format="INV-{yyyy}-{n:06}"), Allocation(7, 9, 3, "", AT)),
        (_seq("fmt2", format="Ü-{n}"), Allocation(7, 7, 1, "2026", AT)),
    ],
)
def test_next_json_is_byte_for_byte_what_pydantic_writes(seq: Sequence, alloc: Allocation) -> None:
    assert next_json(seq, alloc) == next_out(seq, alloc).model_dump_json().encode()


def test_next_json_knows_every_field_of_next_out() -> None:
    # A field added to NextOut must be added to next_json's hand-written line too.
    assert list(NextOut.model_fields) == [
        "sequence",
        "value",
        "last",
        "count",
        "formatted",
        "formatted_range",
        "period",
    ]
