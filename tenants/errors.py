"""Tenant registry errors.

TallyError
├── NotFound (404)
│   ├── TenantNotFound           no tenant with that slug
│   └── ClientNotFound           no such client for that tenant
├── Conflict (409)
│   ├── TenantExists             create with a taken slug
│   ├── IssuerTaken              another tenant registered that identity provider issuer
│   ├── DomainTaken              another tenant uses that domain
│   ├── TenantNotSuspended       delete needs a suspended tenant
│   └── ClientRevoked            rotate/revoke a client that is already revoked
└── Unprocessable (422)
    ├── InvalidTenant            settings that do not hold together
    └── ProvisionError           `tally provision` lacks an input (e.g. the platform domain)
"""

from __future__ import annotations

from core.errors import Conflict, NotFound, Unprocessable


class TenantNotFound(NotFound):
    type = "tenant-not-found"
    title = "Tenant not found"

    def __init__(self, slug: str) -> None:
        super().__init__(f"No tenant '{slug}'.")


class ClientNotFound(NotFound):
    type = "client-not-found"
    title = "Client not found"

    def __init__(self, client_id: str, slug: str) -> None:
        owner = f"tenant '{slug}'" if slug else "the platform"
        super().__init__(f"No client '{client_id}' for {owner}.")


class TenantExists(Conflict):
    type = "tenant-exists"
    title = "Tenant already exists"

    def __init__(self, slug: str) -> None:
        super().__init__(f"A tenant '{slug}' already exists.")


class IssuerTaken(Conflict):
    type = "issuer-taken"
    title = "Issuer already registered"


class DomainTaken(Conflict):
    type = "domain-taken"
    title = "Domain already in use"

    def __init__(self, domain: str) -> None:
        super().__init__(f"Domain '{domain}' belongs to another tenant.")


class TenantNotSuspended(Conflict):
    type = "tenant-not-suspended"
    title = "Tenant is not suspended"


class ClientRevoked(Conflict):
    type = "client-revoked"
    title = "Client revoked"

    def __init__(self, client_id: str) -> None:
        super().__init__(f"Client '{client_id}' is revoked.")


class InvalidTenant(Unprocessable):
    type = "validation-error"
    title = "Invalid tenant settings"


class ProvisionError(Unprocessable):
    type = "provision-error"
    title = "Cannot render the provisioning bundle"
