"""Signing keys, access tokens (mint and verify) and the FastAPI auth dependencies."""
