"""FastAPI dependencies of the audit API."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from audit.service import AuditLog


def get_audit_log(request: Request) -> AuditLog:
    log: AuditLog = request.app.state.audit
    return log


Audit = Annotated[AuditLog, Depends(get_audit_log)]
AfterQuery = Annotated[
    str | None, Query(max_length=64, description="`next_cursor` of the previous page.")
]
LimitQuery = Annotated[int, Query(ge=1, le=500)]
