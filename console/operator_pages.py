"""A platform operator's pages: tenants, one tenant's usage, sequences and API clients,
suspend / resume, and clients created (secret shown once) or revoked.

Every handler checks the session is a platform-admin one and calls the same service
function as the matching ``/admin/v1`` endpoint.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from audit.service import Actor
from auth.schemas import TENANT_SCOPES
from console.charts import bar_chart
from console.dependencies import ConsoleRoute, CurrentSession, PostedForm
from console.pages import render
from console.schemas import Problems, from_error, validate
from console.service import Session, granularity_of, sequence_rows
from core.errors import TallyError
from sequences.dependencies import Sequences
from tenants.dependencies import ClientIdPath, SlugPath, Tenants
from tenants.schemas import ClientCreate
from usage.dependencies import Overview
from usage.router import Usage

router = APIRouter(route_class=ConsoleRoute)
PAGE = 100
Granularity = Annotated[str | None, Query(max_length=8)]
Cursor = Annotated[str | None, Query(max_length=32)]
NOTICES = {
    "suspended": "Tenant suspended: its tokens are refused within the lifecycle bound.",
    "resumed": "Tenant resumed.",
    "revoked": "Client revoked: its tokens are refused within the lifecycle bound.",
}


@router.get("/overview")
async def show_overview(request: Request, session: CurrentSession, overview: Overview) -> Response:
    """The platform at a glance (``GET /admin/v1/overview``): volumes, top tenants and
    sequences near their max."""
    session.require_operator()
    return render(
        request,
        "overview.html",
        session=session,
        active="overview",
        page_title="Overview",
        overview=await overview.overview(top=10),
    )


@router.get("/tenants")
async def list_tenants(
    request: Request,
    session: CurrentSession,
    tenants: Tenants,
    overview: Overview,
    after: Cursor = None,
) -> Response:
    """Tenants with status, plan and numbers issued today and over 30 days
    (``GET /admin/v1/tenants``)."""
    session.require_operator()
    page = await tenants.list_tenants(after=after, limit=PAGE)
    return render(
        request,
        "tenants.html",
        session=session,
        active="tenants",
        page_title="Tenants",
        items=await overview.list_items(page),
        next_cursor=page[-1].slug if len(page) == PAGE else None,
    )


async def _tenant_page(
    request: Request,
    session: Session,
    slug: str,
    tenants: Tenants,
    usage: Usage,
    sequences: Sequences,
    *,
    granularity: str | None = None,
    client_form: dict[str, Any] | None = None,
    client_problems: Problems | None = None,
    status_code: int = 200,
) -> Response:
    session.require_operator()
    tenant = await tenants.get(slug)
    series = await usage.series(slug, granularity=granularity_of(granularity))
    rows, cursor = await sequence_rows(sequences, slug, after=None, limit=PAGE)
    client_problems = client_problems or Problems()
    return render(
        request,
        "tenant.html",
        status_code=status_code,
        session=session,
        active="tenants",
        page_title=f"Tenant {slug}",
        tenant=tenant,
        usage_chart=bar_chart(series),
        rows=rows,
        more_sequences=cursor is not None,
        clients=await tenants.list_clients(slug),
        scopes=TENANT_SCOPES,
        client_form=client_form or {"name": "", "scopes": list(TENANT_SCOPES)},
        client_errors=client_problems.fields,
        client_error=client_problems.form,
        notice=NOTICES.get(request.query_params.get("done", ""), ""),
    )


@router.get("/tenants/{slug}")
async def show_tenant(
    request: Request,
    slug: SlugPath,
    session: CurrentSession,
    tenants: Tenants,
    usage: Usage,
    sequences: Sequences,
    granularity: Granularity = None,
) -> Response:
    """One tenant: status, plan, usage chart, sequences and API clients."""
    return await _tenant_page(
        request, session, slug, tenants, usage, sequences, granularity=granularity
    )


@router.post("/tenants/{slug}/suspend")
async def suspend_tenant(
    slug: SlugPath, session: CurrentSession, _form: PostedForm, tenants: Tenants
) -> Response:
    """Suspend the tenant (``POST /admin/v1/tenants/{slug}/suspend``)."""
    session.require_operator()
    await tenants.suspend(slug, actor=Actor.of(session.principal))
    return RedirectResponse(f"/console/tenants/{slug}?done=suspended", status_code=303)


@router.post("/tenants/{slug}/resume")
async def resume_tenant(
    slug: SlugPath, session: CurrentSession, _form: PostedForm, tenants: Tenants
) -> Response:
    """Lift a suspension (``POST /admin/v1/tenants/{slug}/resume``)."""
    session.require_operator()
    await tenants.resume(slug, actor=Actor.of(session.principal))
    return RedirectResponse(f"/console/tenants/{slug}?done=resumed", status_code=303)


@router.post("/tenants/{slug}/clients")
async def create_client(
    request: Request,
    slug: SlugPath,
    session: CurrentSession,
    form: PostedForm,
    tenants: Tenants,
    usage: Usage,
    sequences: Sequences,
) -> Response:
    """A new API client (``POST /admin/v1/tenants/{slug}/clients``): its secret, once."""
    session.require_operator()
    problems = Problems()
    name, scopes = form.get("name"), form.all("scopes")
    raw: dict[str, Any] = {"name": name, "scopes": scopes}
    values: dict[str, Any] = {"scopes": scopes}
    if name.strip():
        values["name"] = name
    spec = validate(ClientCreate, values, problems, ("name", "scopes"))
    if spec is not None:
        try:
            client = await tenants.create_client(slug, spec, actor=Actor.of(session.principal))
        except TallyError as exc:
            if exc.status == 404:
                raise
            from_error(exc, problems, ("name", "scopes"))
        else:
            return render(
                request,
                "client_created.html",
                status_code=201,
                session=session,
                active="tenants",
                page_title="Client created",
                client=client,
            )
    return await _tenant_page(
        request, session, slug, tenants, usage, sequences,
        client_form=raw, client_problems=problems, status_code=422,
    )  # fmt: skip


@router.post("/tenants/{slug}/clients/{client_id}/revoke")
async def revoke_client(
    slug: SlugPath,
    client_id: ClientIdPath,
    session: CurrentSession,
    _form: PostedForm,
    tenants: Tenants,
) -> Response:
    """Revoke a client (``POST /admin/v1/tenants/{slug}/clients/{client_id}/revoke``)."""
    session.require_operator()
    await tenants.revoke_client(slug, client_id, actor=Actor.of(session.principal))
    return RedirectResponse(f"/console/tenants/{slug}?done=revoked", status_code=303)
