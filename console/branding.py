"""The instance's look: name, colour and logo, and the colours derived from them.

Text on the brand colour is black or white, whichever has the higher WCAG contrast
ratio with it, so any ``TALLY_BRAND_COLOR`` stays readable.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from core.settings import Settings

WHITE = "#ffffff"
INK = "#111827"  # the body text colour; near-black


def _channel(c: int) -> float:
    s = c / 255
    return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4


def luminance(color: str) -> float:
    """WCAG 2 relative luminance of ``#rrggbb`` (0: black, 1: white)."""
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two colours (1 to 21)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def text_on(color: str) -> str:
    """White or ink, whichever reads better on ``color``."""
    return WHITE if contrast(color, WHITE) >= contrast(color, INK) else INK


@dataclass(frozen=True, slots=True)
class Brand:
    name: str
    color: str
    on_color: str  # text on the brand colour
    accent: str  # links and outlines on white: the brand colour when it is readable there
    logo_url: str
    logo_origin: str  # for the CSP's img-src; empty without a logo

    @property
    def stylesheet(self) -> str:
        return (
            f":root {{ --brand: {self.color}; --on-brand: {self.on_color};"
            f" --accent: {self.accent}; }}\n"
        )


@lru_cache(maxsize=8)
def brand_of(settings: Settings) -> Brand:
    """The brand a settings object describes (validated there: #rrggbb, https logo)."""
    color = settings.brand_color.lower()
    origin = ""
    if settings.brand_logo_url:
        parts = urlsplit(settings.brand_logo_url)
        origin = f"{parts.scheme}://{parts.netloc}"
    return Brand(
        name=settings.brand_name,
        color=color,
        on_color=text_on(color),
        accent=color if contrast(color, WHITE) >= 4.5 else INK,
        logo_url=settings.brand_logo_url,
        logo_origin=origin,
    )
