"""A ledger sequence's pages: reservations (reserve, commit, void), the ledger and the
gap report, each downloadable as CSV for auditors.

The same ``LedgerService`` calls as ``/v1/sequences/{name}/reservations|ledger|gaps``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from pydantic import BeforeValidator

from audit.service import Actor
from console.dependencies import ConsoleRoute, CurrentSession, PostedForm
from console.pages import render
from console.schemas import Problems, from_error, read_values, validate
from console.service import Session
from core.errors import TallyError
from ledger.dependencies import Ledger, PeriodQuery, ReservationPath, ValueCursor
from ledger.export import csv_text
from ledger.schemas import (
    DEFAULT_TTL_SECONDS,
    CommitRequest,
    EntryOut,
    Gap,
    ReserveRequest,
    State,
    VoidRequest,
)
from ledger.service import LedgerService
from sequences.dependencies import NamePath

router = APIRouter(route_class=ConsoleRoute)
PAGE = 100
CSV_PAGE = 1000
STATES = ("reserved", "committed", "voided", "expired")
# The API's CSV columns (``Accept: text/csv`` on …/ledger and …/gaps).
LEDGER_FIELDS = list(EntryOut.model_fields)
GAP_FIELDS = list(Gap.model_fields)
NOTICES = {
    "reserved": "Number reserved.",
    "committed": "Reservation committed.",
    "voided": "Reservation voided: the number stays on record, never issued again.",
}
_UNSAFE_IN_FILENAME = re.compile(r"[^A-Za-z0-9._-]")
# The filter form's "any" sends ``state=``: no filter (the API's StateQuery refuses it).
StateFilter = Annotated[State | None, BeforeValidator(lambda v: v or None), Query()]


def _download(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}


def _filename(sequence: str, what: str, period: str | None) -> str:
    """``<sequence>-<what>[-<period>].csv`` of safe characters only: the name and period
    are checked already, but a header is no place to trust that (quotes, CR/LF, non-latin-1)."""
    name = f"{sequence}-{what}{'-' + period if period else ''}.csv"
    return _UNSAFE_IN_FILENAME.sub("_", name)


async def _ledger_page(
    request: Request,
    session: Session,
    ledger: LedgerService,
    name: str,
    *,
    period: str | None = None,
    state: str | None = None,
    after: int | None = None,
    problems: Problems | None = None,
    form_for: str = "",
    status_code: int = 200,
) -> Response:
    tenant = session.require_tenant("sequences:read")
    report = await ledger.gaps(tenant, name, period=period)
    entries = await ledger.entries(
        tenant,
        name,
        period=period,
        states=[state] if state else None,
        since=None,
        until=None,
        after=after,
        limit=PAGE,
    )
    reserved = await ledger.entries(
        tenant,
        name,
        period=period,
        states=["reserved"],
        since=None,
        until=None,
        after=None,
        limit=PAGE,
    )
    problems = problems or Problems()
    open_ids = {e.reservation for e in reserved}
    # Its row is gone (committed or voided elsewhere, expired): say so at the top.
    orphaned = form_for not in ("", "reserve") and form_for not in open_ids
    return render(
        request,
        "ledger.html",
        status_code=status_code,
        session=session,
        active="sequences",
        page_title=f"Ledger of {name}",
        name=name,
        report=report,
        entries=[EntryOut.of(e) for e in entries],
        reserved=[EntryOut.of(e) for e in reserved],
        next_cursor=entries[-1].value if len(entries) == PAGE else None,
        period=period or "",
        state=state or "",
        states=STATES,
        can_take="sequences:next" in session.principal.scopes,
        ttl_default=DEFAULT_TTL_SECONDS,
        errors=problems.fields,
        form_error=problems.form,
        form_for=form_for,
        page_error=" ".join([problems.form, *problems.fields.values()]).strip() if orphaned else "",
        notice=NOTICES.get(request.query_params.get("done", ""), ""),
    )


@router.get("/sequences/{name}/ledger")
async def show_ledger(
    request: Request,
    name: NamePath,
    session: CurrentSession,
    ledger: Ledger,
    period: PeriodQuery = None,
    state: StateFilter = None,
    after: ValueCursor = None,
) -> Response:
    """Reservations, the gap report and the ledger of a period (the current one by default)."""
    return await _ledger_page(
        request, session, ledger, name, period=period or None, state=state or None, after=after
    )


@router.get("/sequences/{name}/ledger.csv")
async def ledger_csv(
    name: NamePath,
    session: CurrentSession,
    ledger: Ledger,
    period: PeriodQuery = None,
    state: StateFilter = None,
) -> Response:
    """The whole ledger of a period as CSV (the API's columns), streamed page by page."""
    tenant = session.require_tenant("sequences:read")
    period = period or None  # as on the page: empty is the current period
    states: list[str] | None = [state] if state else None
    # The first page is read before answering, so an unknown sequence is a 404 page.
    first = await ledger.entries(
        tenant, name, period=period, states=states, since=None, until=None, after=None,
        limit=CSV_PAGE,
    )  # fmt: skip

    async def rows() -> AsyncIterator[str]:
        page = first
        yield csv_text([EntryOut.of(e) for e in page], LEDGER_FIELDS, header=True)
        while len(page) == CSV_PAGE:
            page = await ledger.entries(
                tenant, name, period=period, states=states, since=None, until=None,
                after=page[-1].value, limit=CSV_PAGE,
            )  # fmt: skip
            yield csv_text([EntryOut.of(e) for e in page], LEDGER_FIELDS, header=False)

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers=_download(_filename(name, "ledger", period)),
    )


@router.get("/sequences/{name}/gaps.csv")
async def gaps_csv(
    name: NamePath, session: CurrentSession, ledger: Ledger, period: PeriodQuery = None
) -> Response:
    """The gap report's numbers (every issued number not committed) as CSV."""
    tenant = session.require_tenant("sequences:read")
    report = await ledger.gaps(tenant, name, period=period or None)
    body = csv_text(report.gaps, GAP_FIELDS)
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers=_download(_filename(name, "gaps", report.period)),
    )


def _back(name: str, done: str) -> Response:
    return RedirectResponse(f"/console/sequences/{name}/ledger?done={done}", status_code=303)


@router.post("/sequences/{name}/reservations")
async def reserve(
    request: Request, name: NamePath, session: CurrentSession, form: PostedForm, ledger: Ledger
) -> Response:
    """Reserve the next number (``POST /v1/sequences/{name}/reservations``)."""
    tenant = session.require_tenant("sequences:next")
    problems, status_code = Problems(), 422
    values = read_values(form, integers=("ttl_seconds",), texts=("reference",), problems=problems)
    spec = validate(
        ReserveRequest,
        {k: v for k, v in values.items() if v is not None},
        problems,
        ("ttl_seconds", "reference"),
    )
    if spec is not None:
        try:
            await ledger.reserve(
                tenant,
                name,
                ttl_seconds=spec.ttl_seconds,
                reference=spec.reference,
                actor=Actor.of(session.principal),
            )
        except TallyError as exc:
            if exc.status == 404:
                raise
            from_error(exc, problems, ("ttl_seconds", "reference"))
            status_code = exc.status
        else:
            return _back(name, "reserved")
    return await _ledger_page(
        request, session, ledger, name, problems=problems, form_for="reserve",
        status_code=status_code,
    )  # fmt: skip


@router.post("/sequences/{name}/reservations/{reservation}/commit")
async def commit(
    request: Request,
    name: NamePath,
    reservation: ReservationPath,
    session: CurrentSession,
    form: PostedForm,
    ledger: Ledger,
) -> Response:
    """Commit a reservation (``POST …/reservations/{id}/commit``)."""
    tenant = session.require_tenant("sequences:next")
    problems, status_code = Problems(), 422
    values = read_values(form, texts=("reference",), problems=problems)
    body = validate(CommitRequest, values, problems, ("reference",))
    if body is not None:
        try:
            await ledger.commit(
                tenant,
                name,
                reservation,
                reference=body.reference,
                actor=Actor.of(session.principal),
            )
        except TallyError as exc:
            if exc.status == 404:
                raise
            from_error(exc, problems, ("reference",))
            status_code = exc.status
        else:
            return _back(name, "committed")
    return await _ledger_page(
        request, session, ledger, name, problems=problems, form_for=reservation,
        status_code=status_code,
    )  # fmt: skip


@router.post("/sequences/{name}/reservations/{reservation}/void")
async def void(
    request: Request,
    name: NamePath,
    reservation: ReservationPath,
    session: CurrentSession,
    form: PostedForm,
    ledger: Ledger,
) -> Response:
    """Void a reservation with a reason (``POST …/reservations/{id}/void``)."""
    tenant = session.require_tenant("sequences:next")
    problems, status_code = Problems(), 422
    body = validate(VoidRequest, {"reason": form.get("reason").strip()}, problems, ("reason",))
    if body is not None:
        try:
            await ledger.void(
                tenant, name, reservation, reason=body.reason, actor=Actor.of(session.principal)
            )
        except TallyError as exc:
            if exc.status == 404:
                raise
            from_error(exc, problems, ("reason",))
            status_code = exc.status
        else:
            return _back(name, "voided")
    return await _ledger_page(
        request, session, ledger, name, problems=problems, form_for=reservation,
        status_code=status_code,
    )  # fmt: skip
