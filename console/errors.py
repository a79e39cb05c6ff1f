"""Console errors (rendered as HTML pages by ``console.dependencies.ConsoleRoute``).

TallyError
├── Unauthorized (401)
│   └── SignInRequired      no session cookie, or its token no longer holds: sign in
└── Forbidden (403)
    ├── CsrfRefused         a state-changing form without this session's CSRF token,
    │                       or from another origin
    └── WrongConsole        an operator page for a tenant session, or the other way round
"""

from __future__ import annotations

from core.errors import Forbidden, Unauthorized


class SignInRequired(Unauthorized):
    type = "sign-in-required"
    title = "Sign in required"

    def __init__(self, detail: str = "Sign in to use the console.") -> None:
        super().__init__(detail, error=None)


class CsrfRefused(Forbidden):
    type = "csrf-refused"
    title = "Form refused"

    def __init__(self) -> None:
        super().__init__(
            "This form was not sent from this console page (missing or wrong CSRF token);"
            " reload the page and try again."
        )


class WrongConsole(Forbidden):
    type = "wrong-console"
    title = "Not available for this sign-in"
