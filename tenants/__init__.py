"""Tenants: the registry of client businesses, their API clients and onboarding."""
