"""A guarded browser page: every request must stay on the instance's origin and no
JavaScript error may be raised; screenshots go under the test's temporary directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Response, Route


@dataclass
class Guard:
    origin: str
    context: BrowserContext
    page: Page
    shots: Path
    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    taken: list[Path] = field(default_factory=list)
    failed_pages: set[str] = field(default_factory=set)
    without_csp: list[str] = field(default_factory=list)

    def watch(self) -> None:
        self.context.route("**/*", self._route)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.page.on("request", lambda request: self.urls.append(request.url))
        self.page.on("response", self._response)

    def _route(self, route: Route) -> None:
        url = route.request.url
        if url == self.origin or url.startswith(self.origin + "/"):
            route.continue_()
        else:  # never let it out; the test fails on it
            self.foreign.append(url)
            route.abort()

    def _response(self, response: Response) -> None:
        path = response.url.removeprefix(self.origin)
        if (path in ("", "/") or path.startswith(("/console", "/docs"))) and (
            "content-security-policy" not in response.headers
        ):
            self.without_csp.append(response.url)
        if response.status < 400:
            return
        if response.request.resource_type == "document":
            # A page answered 4xx on purpose (a form with errors is a 422): chromium logs
            # that as a console error, which is no JavaScript error.
            self.failed_pages.add(response.url)
        else:  # a missing script, stylesheet or image is a bug
            self.errors.append(f"{response.status} for {response.url}")

    def _console(self, message: ConsoleMessage) -> None:
        # CSP violations and failed loads are reported as console errors too.
        if message.type != "error":
            return
        if message.text.startswith("Failed to load resource") and (
            message.location.get("url") in self.failed_pages
        ):
            return
        self.errors.append(f"console: {message.text}")

    def shot(self, name: str) -> Path:
        path = self.shots / f"{len(self.taken) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        return path

    def assert_clean(self, secrets: tuple[str, ...] = ()) -> None:
        """No request left the origin, no JS error, no secret in any requested URL."""
        assert self.foreign == [], f"requests left {self.origin}: {self.foreign}"
        assert self.errors == [], self.errors
        assert self.without_csp == [], f"console/docs responses without a CSP: {self.without_csp}"
        for secret in secrets:
            leaked = [u for u in self.urls if secret and secret in u]
            assert leaked == [], "a token appeared in a requested URL"


def chromium_path() -> str:
    from tests.tools import require_tool

    return require_tool(
        "chromium", env_var="CHROMIUM_PATH", hint="apt-get install chromium (.ci/run does)"
    )


def skip_without_playwright() -> None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        from tests.tools import missing

        missing("playwright is not installed (pip install -e '.[dev]')")
