"""FastAPI dependencies of the audit API."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from audit.service import AuditLog


def get_audit_log(request: Request) -> AuditLog:
    log: AuditLog = request.app.state.audit
    return log


Audit = Annotated[AuditLog, Depends(get_audit_log)]
