"""Pieces every domain package shares: the error base class and the clock."""
