"""A tenant's pages: its sequences (create, settings, advance), usage and audit trail.

Every handler reads the tenant from the session's verified token and calls the same
service function as the matching ``/v1`` endpoint.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from audit.dependencies import Audit
from audit.service import Actor
from console.charts import bar_chart
from console.dependencies import ConsoleRoute, CurrentSession, PostedForm
from console.pages import render
from console.schemas import Problems, from_error, read_values, validate, without_none
from console.service import SequenceRow, Session, granularity_of, headroom, sequence_rows
from core.errors import TallyError
from core.pagination import AfterQuery
from sequences.dependencies import NamePath, Sequences
from sequences.schemas import AdvanceRequest, SequenceCreate, SequencePatch
from usage.router import Usage

router = APIRouter(route_class=ConsoleRoute)
PAGE = 100
Granularity = Annotated[str | None, Query(max_length=8)]
CREATE_FIELDS = (
    "name",
    "start",
    "step",
    "min",
    "max",
    "format",
    "reset",
    "mode",
    "cycle",
    "ledger",
)
EDIT_FIELDS = ("step", "min", "max", "format", "cycle")
NOTICES = {
    "created": "Sequence created.",
    "saved": "Settings saved.",
    "advanced": "Counter advanced.",
}


def _notice(request: Request) -> str:
    return NOTICES.get(request.query_params.get("done", ""), "")


async def _sequences_page(
    request: Request,
    session: Session,
    sequences: Sequences,
    *,
    after: str | None = None,
    values: dict[str, Any] | None = None,
    problems: Problems | None = None,
    status_code: int = 200,
) -> Response:
    tenant = session.require_tenant("sequences:read")
    rows, cursor = await sequence_rows(sequences, tenant, after=after, limit=PAGE)
    problems = problems or Problems()
    return render(
        request,
        "sequences.html",
        status_code=status_code,
        session=session,
        active="sequences",
        page_title="Sequences",
        rows=rows,
        next_cursor=cursor,
        can_write="sequences:write" in session.principal.scopes,
        values=values or {"step": 1, "start": 1, "reset": "never", "mode": "strict"},
        errors=problems.fields,
        form_error_message=problems.form,
        notice=_notice(request),
    )


@router.get("/sequences")
async def list_sequences(
    request: Request, session: CurrentSession, sequences: Sequences, after: AfterQuery = None
) -> Response:
    """The tenant's sequences with last, next and headroom, and the form for a new one."""
    return await _sequences_page(request, session, sequences, after=after)


@router.post("/sequences")
async def create_sequence(
    request: Request, session: CurrentSession, form: PostedForm, sequences: Sequences
) -> Response:
    """Create a sequence (``POST /v1/sequences``); errors shown by their fields."""
    tenant = session.require_tenant("sequences:write")
    problems = Problems()
    raw: dict[str, Any] = {name: form.get(name) for name in CREATE_FIELDS}
    raw["cycle"], raw["ledger"] = form.has("cycle"), form.has("ledger")
    values = read_values(
        form,
        integers=("start", "step", "min", "max"),
        texts=("name", "format", "reset", "mode"),
        flags=("cycle", "ledger"),
        problems=problems,
    )
    spec = validate(SequenceCreate, without_none(values), problems, CREATE_FIELDS)
    if spec is not None:
        try:
            await sequences.create(tenant, spec, actor=Actor.of(session.principal))
        except TallyError as exc:
            from_error(exc, problems, CREATE_FIELDS)
            return await _sequences_page(
                request, session, sequences, values=raw, problems=problems, status_code=exc.status
            )
        return RedirectResponse(f"/console/sequences/{spec.name}?done=created", status_code=303)
    return await _sequences_page(
        request, session, sequences, values=raw, problems=problems, status_code=422
    )


async def _sequence_page(
    request: Request,
    session: Session,
    sequences: Sequences,
    usage: Usage,
    name: str,
    *,
    granularity: str | None = None,
    edit: dict[str, Any] | None = None,
    edit_problems: Problems | None = None,
    advance: dict[str, Any] | None = None,
    advance_problems: Problems | None = None,
    status_code: int = 200,
) -> Response:
    tenant = session.require_tenant("sequences:read")
    seq = await sequences.describe(tenant, name)
    series = await usage.series(tenant, sequence=name, granularity=granularity_of(granularity))
    edit_problems = edit_problems or Problems()
    advance_problems = advance_problems or Problems()
    return render(
        request,
        "sequence.html",
        status_code=status_code,
        session=session,
        active="sequences",
        page_title=f"Sequence {name}",
        row=SequenceRow(seq, headroom(seq)),
        can_write="sequences:write" in session.principal.scopes,
        usage_chart=bar_chart(series),
        edit=edit
        or {
            "step": seq.step,
            "min": seq.min,
            "max": seq.max,
            "format": seq.format,
            "cycle": seq.cycle,
        },
        edit_errors=edit_problems.fields,
        edit_error=edit_problems.form,
        advance=advance or {"to": seq.next},
        advance_errors=advance_problems.fields,
        advance_error=advance_problems.form,
        notice=_notice(request),
    )


@router.get("/sequences/{name}")
async def show_sequence(
    request: Request,
    name: NamePath,
    session: CurrentSession,
    sequences: Sequences,
    usage: Usage,
    granularity: Granularity = None,
) -> Response:
    """One sequence: its state, settings and advance forms, and its usage chart."""
    return await _sequence_page(request, session, sequences, usage, name, granularity=granularity)


@router.post("/sequences/{name}/settings")
async def update_sequence(
    request: Request,
    name: NamePath,
    session: CurrentSession,
    form: PostedForm,
    sequences: Sequences,
    usage: Usage,
) -> Response:
    """Change settings (``PATCH /v1/sequences/{name}``); a blank min, max or format clears it."""
    tenant = session.require_tenant("sequences:write")
    problems = Problems()
    raw: dict[str, Any] = {name_: form.get(name_) for name_ in EDIT_FIELDS}
    raw["cycle"] = form.has("cycle")
    values = read_values(
        form,
        integers=("step", "min", "max"),
        texts=("format",),
        flags=("cycle",),
        problems=problems,
    )
    patch = validate(SequencePatch, values, problems, EDIT_FIELDS)
    if patch is not None:
        try:
            await sequences.update(tenant, name, patch, actor=Actor.of(session.principal))
        except TallyError as exc:
            if exc.status == 404:
                raise
            from_error(exc, problems, EDIT_FIELDS)
            return await _sequence_page(
                request, session, sequences, usage, name,
                edit=raw, edit_problems=problems, status_code=exc.status,
            )  # fmt: skip
        return RedirectResponse(f"/console/sequences/{name}?done=saved", status_code=303)
    return await _sequence_page(
        request, session, sequences, usage, name, edit=raw, edit_problems=problems, status_code=422
    )


@router.post("/sequences/{name}/advance")
async def advance_sequence(
    request: Request,
    name: NamePath,
    session: CurrentSession,
    form: PostedForm,
    sequences: Sequences,
    usage: Usage,
) -> Response:
    """Move the counter forward (``POST /v1/sequences/{name}/advance``)."""
    tenant = session.require_tenant("sequences:write")
    problems = Problems()
    raw = {"to": form.get("to")}
    values = read_values(form, integers=("to",), problems=problems)
    body = validate(AdvanceRequest, values, problems, ("to",))
    if body is not None:
        try:
            await sequences.advance(tenant, name, body.to, actor=Actor.of(session.principal))
        except TallyError as exc:
            if exc.status == 404:
                raise
            from_error(exc, problems, ("to",))
            return await _sequence_page(
                request, session, sequences, usage, name,
                advance=raw, advance_problems=problems, status_code=exc.status,
            )  # fmt: skip
        return RedirectResponse(f"/console/sequences/{name}?done=advanced", status_code=303)
    return await _sequence_page(
        request, session, sequences, usage, name,
        advance=raw, advance_problems=problems, status_code=422,
    )  # fmt: skip


@router.get("/usage")
async def show_usage(
    request: Request, session: CurrentSession, usage: Usage, granularity: Granularity = None
) -> Response:
    """Numbers the tenant took per hour or day (``GET /v1/usage``), as a chart."""
    tenant = session.require_tenant("sequences:read")
    series = await usage.series(tenant, granularity=granularity_of(granularity))
    return render(
        request,
        "usage.html",
        session=session,
        active="usage",
        page_title="Usage",
        usage=series,
        usage_chart=bar_chart(series),
    )


@router.get("/audit")
async def show_audit(
    request: Request, session: CurrentSession, audit: Audit, after: AfterQuery = None
) -> Response:
    """The tenant's administrative changes (``GET /v1/audit``)."""
    tenant = session.require_tenant("sequences:read")
    entries = await audit.list(tenant, after=after, limit=PAGE)
    return render(
        request,
        "audit.html",
        session=session,
        active="audit",
        page_title="Audit trail",
        entries=entries,
        next_cursor=entries[-1].id if len(entries) == PAGE else None,
    )
