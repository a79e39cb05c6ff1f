"""Tenant registry, API clients and their lifecycle; the onboarding CLI and provisioning."""
