"""Number templates, e.g. ``INV-{yyyy}-{n:06}``.

Syntax (everything else is literal text; ``{{`` and ``}}`` are literal braces):

=========  ==================================================  ==========
token      meaning                                             example
=========  ==================================================  ==========
``{n}``    the number                                          ``42``
``{n:0W}`` the number zero-padded to width W (1-20)            ``000042``
``{yyyy}`` year                                                ``2026``
``{yy}``   two-digit year                                      ``26``
``{mm}``   month, 01-12                                        ``03``
``{dd}``   day of month, 01-31                                 ``07``
``{ww}``   ISO 8601 week, 01-53                                ``10``
``{gggg}`` ISO 8601 week-based year (use with ``{ww}``)        ``2026``
``{ddd}``  day of year, 001-366                                ``066``
=========  ==================================================  ==========

Dates are rendered in the tenant's time zone at the instant of allocation. A
template must contain exactly one number token, so formatted values are as unique
as the numbers. Templates are checked when a sequence is created or changed, never
at allocation time.

A resetting or cycling sequence repeats its numbers by design, so its formatted
values are unique only if the template names the period: ``{yyyy}`` for a yearly
reset (not ``{gggg}``, the ISO week-year, which differs around New Year),
``{yyyy}{mm}`` for monthly, ``{yyyy}{mm}{dd}`` for daily.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

MAX_TEMPLATE_LENGTH = 128
MAX_WIDTH = 20

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NUMBER = re.compile(r"^n(?::0(\d{1,2}))?$")
_DATE_TOKENS: dict[str, Callable[[datetime], str]] = {
    "yyyy": lambda d: f"{d.year:04d}",
    "yy": lambda d: f"{d.year % 100:02d}",
    "mm": lambda d: f"{d.month:02d}",
    "dd": lambda d: f"{d.day:02d}",
    "ww": lambda d: f"{d.isocalendar().week:02d}",
    "gggg": lambda d: f"{d.isocalendar().year:04d}",
    "ddd": lambda d: f"{d.timetuple().tm_yday:03d}",
}


# The grammar above as one regular expression (ECMA-262 and Python alike), for the
# OpenAPI document: literal text and date tokens around exactly one number token.
_LITERAL = r"[^{}\x00-\x1f]|\{\{|\}\}"
_DATE = r"\{(?:yyyy|yy|mm|dd|ww|gggg|ddd)\}"
_NUMBER_PART = r"\{n(?::0(?:[0-9]|[01][0-9]|20))?\}"
TEMPLATE_PATTERN = rf"^(?:{_LITERAL}|{_DATE})*{_NUMBER_PART}(?:{_LITERAL}|{_DATE})*$"


class TemplateError(ValueError):
    """The template does not follow the syntax; the message says where."""


@dataclass(frozen=True)
class Template:
    source: str
    # Parts are literal strings, date-token names, or the number (width, as an int).
    parts: tuple[str | int | Callable[[datetime], str], ...]

    def render(self, number: int, at: datetime) -> str:
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, int):
                out.append(_pad(number, part))
            else:
                out.append(part(at))
        return "".join(out)


def _pad(number: int, width: int) -> str:
    if number < 0:
        return "-" + str(-number).zfill(max(width - 1, 0))
    return str(number).zfill(width)


def parse(source: str) -> Template:
    """Parse and validate a template; raise ``TemplateError`` with a clear message."""
    if len(source) > MAX_TEMPLATE_LENGTH:
        raise TemplateError(f"template is longer than {MAX_TEMPLATE_LENGTH} characters")
    if any(ord(c) < 0x20 for c in source):
        raise TemplateError("template contains control characters")
    parts: list[str | int | Callable[[datetime], str]] = []
    numbers = 0
    pos = 0
    for match in _TOKEN.finditer(source):
        if match.start() > pos:
            parts.append(source[pos : match.start()])
        pos = match.end()
        text = match.group(0)
        if text in ("{{", "}}"):
            parts.append(text[0])
            continue
        if text in ("{", "}"):
            raise TemplateError(f"unbalanced '{text}' at position {match.start()}")
        token = match.group(1)
        number = _NUMBER.match(token)
        if number:
            width = int(number.group(1) or 0)
            if width > MAX_WIDTH:
                raise TemplateError(f"number width must be at most {MAX_WIDTH}")
            parts.append(width)
            numbers += 1
        elif token in _DATE_TOKENS:
            parts.append(_DATE_TOKENS[token])
        else:
            known = ", ".join(["n", "n:0W", *_DATE_TOKENS])
            raise TemplateError(f"unknown token {{{token}}}; known tokens: {known}")
    if pos < len(source):
        parts.append(source[pos:])
    if numbers != 1:
        raise TemplateError("template must contain the number token {n} exactly once")
    return Template(source, tuple(parts))
