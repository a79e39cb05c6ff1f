"""The ledger's CSV: ``Accept: text/csv`` on the API and the console's downloads write
it here, so both hold the same bytes.

Auditors open it in a spreadsheet, and Excel, LibreOffice and Google Sheets run a cell
that starts with ``= + - @``, TAB or CR as a formula; references and void reasons are
anyone's text. Such a text cell is written with a leading ``'`` (OWASP's advice), which
the spreadsheet shows as text. Numbers are never touched: the integer columns are not
text, and a text cell that is a plain number (``-5``, a negative value formatted ``{n}``)
is no formula.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def cell(value: Any) -> Any:
    """A JSON value as its CSV cell: '' for null, text a spreadsheet would run defused."""
    if value is None:
        return ""
    if (
        isinstance(value, str)
        and value.startswith(FORMULA_STARTS)
        and not _PLAIN_NUMBER.fullmatch(value)
    ):
        return "'" + value
    return value


def csv_text(rows: Iterable[BaseModel], fields: list[str], *, header: bool = True) -> str:
    """Rows as RFC 4180 CSV with CRLF line ends, the columns ``fields`` (the JSON keys)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\r\n")
    if header:
        writer.writeheader()
    for row in rows:
        data = row.model_dump(mode="json")
        writer.writerow({k: cell(data[k]) for k in fields})
    return out.getvalue()
