"""FastAPI dependencies of the ledger API."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request
from pydantic import AfterValidator

from ledger.schemas import RESERVATION_PATTERN, State
from ledger.service import LedgerService
from sequences.periods import PERIOD_PATTERN, check_period
from sequences.schemas import INT64_MAX, INT64_MIN


async def get_ledger_service(request: Request) -> LedgerService:
    service: LedgerService = request.app.state.ledger
    return service


Ledger = Annotated[LedgerService, Depends(get_ledger_service)]
ReservationPath = Annotated[
    str, Path(pattern=RESERVATION_PATTERN, description="The id `POST …/reservations` answered.")
]
# Checked, not free text: it names files (``Content-Disposition``) and counter keys.
PeriodQuery = Annotated[
    str | None,
    AfterValidator(check_period),
    Query(
        max_length=10,
        description="The reset period ('2026', '2026-03', '2026-03-31'); default: the current one.",
        json_schema_extra={"pattern": PERIOD_PATTERN},
    ),
]
StateQuery = Annotated[State | None, Query(description="Only entries in this state.")]
ValueCursor = Annotated[
    int | None,
    Query(ge=INT64_MIN, le=INT64_MAX, description="`next_cursor` of the previous page."),
]


def wants_csv(request: Request) -> bool:
    """``Accept: text/csv`` (the form auditors open in a spreadsheet); JSON otherwise."""
    return "text/csv" in request.headers.get("accept", "")
