"""Small helpers shared by every package's Typer commands."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

import typer

from core.errors import TallyError


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr and a non-zero exit: how every command reports an error."""
    typer.echo(f"tally: {message}", err=True)
    raise typer.Exit(code)


def cannot_open_store(exc: Exception) -> NoReturn:
    """Fail for a store that would not open or start (a file that is no database, a data
    directory that cannot be made): its reason, never the URL, which may hold a password."""
    reason = exc.detail if isinstance(exc, TallyError) else str(exc)
    fail(f"cannot open the store named by TALLY_STORE_URL: {reason}", 2)


def print_table(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    """A plain aligned table for humans (``--json`` is for scripts)."""
    cells = [[str(r.get(c, "") if r.get(c) is not None else "") for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    typer.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
