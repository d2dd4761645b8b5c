"""The dashboard's session: the API token in a cookie, and a CSRF token per session.

Policies:

* **Same token as the API.** ``POST /ui/login`` takes ``WORKFLOW_API_TOKEN`` from a
  form, compares it in constant time (:func:`hmac.compare_digest`) and keeps it in
  the :data:`SESSION_COOKIE` cookie: ``Secure``, ``HttpOnly``, ``SameSite=Strict``,
  path ``/ui``. The token never appears in a URL, a page or a log line. A wrong
  token is answered 401 with the login form again.
* **CSRF.** Login also draws a random :data:`CSRF_COOKIE` (same flags); every POST
  form carries it in the hidden ``csrf`` field and a POST whose field does not
  match the cookie is refused 403 (on top of ``SameSite=Strict``, which keeps other
  sites' requests from carrying either cookie).
* **Logout** (``POST /ui/logout``, CSRF-checked) deletes both cookies.
* **Without a token** (``WORKFLOW_API_INSECURE=true``) every page is open, but POST
  forms still need the CSRF cookie, which any page sets when it is missing.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

__all__ = ["COOKIE_PATH", "CSRF_COOKIE", "SESSION_COOKIE", "Session", "SessionPolicy"]

SESSION_COOKIE = "workflow_session"
CSRF_COOKIE = "workflow_csrf"
COOKIE_PATH = "/ui"
MAX_TOKEN_CHARS = 4096
"""Longest token read from a cookie or the login form (a longer one is wrong)."""


@dataclass(frozen=True, slots=True)
class Session:
    """What one request carries: is it signed in, and its CSRF token (if any)."""

    authenticated: bool
    csrf: str | None


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """Checks tokens and sets cookies (``token`` is ``None`` when auth is off)."""

    token: str | None
    max_age: int = 12 * 3600

    def check_token(self, given: str) -> bool:
        """True when ``given`` is the API token (always true when auth is off)."""
        if self.token is None:
            return True
        if len(given) > MAX_TOKEN_CHARS:
            return False
        return hmac.compare_digest(
            given.encode("utf-8", "surrogateescape"), self.token.encode("utf-8")
        )

    def session(self, request: Request) -> Session:
        """The session the request's cookies carry."""
        csrf = request.cookies.get(CSRF_COOKIE) or None
        if csrf is not None and len(csrf) > MAX_TOKEN_CHARS:
            csrf = None
        if self.token is None:
            return Session(authenticated=True, csrf=csrf)
        given = request.cookies.get(SESSION_COOKIE, "")
        return Session(authenticated=bool(given) and self.check_token(given), csrf=csrf)

    @staticmethod
    def csrf_ok(session: Session, sent: str | None) -> bool:
        """True when the form's ``csrf`` field matches the session's cookie."""
        if session.csrf is None or not sent or len(sent) > MAX_TOKEN_CHARS:
            return False
        return hmac.compare_digest(sent.encode("utf-8", "surrogateescape"), session.csrf.encode())

    @staticmethod
    def new_csrf() -> str:
        return secrets.token_urlsafe(32)

    def sign_in(self, response: Response, token: str) -> str:
        """Set the session and a fresh CSRF cookie on ``response``; return the CSRF token."""
        csrf = self.new_csrf()
        self._set(response, SESSION_COOKIE, token)
        self._set(response, CSRF_COOKIE, csrf)
        return csrf

    def set_csrf(self, response: Response, csrf: str) -> None:
        self._set(response, CSRF_COOKIE, csrf)

    def sign_out(self, response: Response) -> None:
        for name in (SESSION_COOKIE, CSRF_COOKIE):
            response.delete_cookie(
                name, path=COOKIE_PATH, secure=True, httponly=True, samesite="strict"
            )

    def _set(self, response: Response, name: str, value: str) -> None:
        response.set_cookie(
            name,
            value,
            max_age=self.max_age,
            path=COOKIE_PATH,
            secure=True,
            httponly=True,
            samesite="strict",
        )
