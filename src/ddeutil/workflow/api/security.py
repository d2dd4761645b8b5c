"""Request-level security: bearer token, name patterns and the body size limit.

Policies:

* **Bearer token.** Every route but ``/health`` (and the OpenAPI docs) needs
  ``Authorization: Bearer <WORKFLOW_API_TOKEN>``. The token is compared with
  :func:`hmac.compare_digest` on UTF-8 bytes, so the comparison time does not
  depend on where the values differ. A missing header, another scheme and a
  wrong token all answer **401** ``unauthorized`` with a ``WWW-Authenticate:
  Bearer`` challenge (RFC 6750: an invalid token is 401, 403 is for a valid token
  without the right scope, which this API does not have).
* **Names in paths** must match :data:`NAME_PATTERN` / :data:`RUN_ID_PATTERN`:
  letters, digits, ``_``, ``-`` and single dots between them, at most 128
  characters. ``..``, ``/``, ``\\`` and encoded slashes never reach a lookup; a
  name that does not match is a 422, a path that does not route (an encoded
  ``/`` decodes to a path separator) a 404.
* **Request bodies** larger than :data:`MAX_BODY_BYTES` are refused with 413
  ``payload_too_large``: at once when ``Content-Length`` says so, else as soon
  as the streamed body passes the limit.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError, error_body

__all__ = [
    "IDEMPOTENCY_KEY_PATTERN",
    "MAX_BODY_BYTES",
    "MAX_NAME_LENGTH",
    "NAME_PATTERN",
    "RUN_ID_PATTERN",
    "BearerAuth",
    "BodyLimitMiddleware",
    "bearer_auth",
]

MAX_BODY_BYTES = 1024 * 1024
"""Largest request body accepted (1 MiB)."""

MAX_NAME_LENGTH = 128
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*$"
"""Pipeline names in paths: no ``/``, no ``..``, no leading or trailing dot."""
RUN_ID_PATTERN = NAME_PATTERN
"""Run ids in paths (``20240101T000000-1a2b3c4d`` and the like)."""
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,200}$"
"""``Idempotency-Key`` values: 1 to 200 printable ASCII characters, no spaces."""

_CHALLENGE = 'Bearer realm="ddeutil-workflow"'


_SCHEME = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="the value of WORKFLOW_API_TOKEN",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_SCHEME)]


class BearerAuth:
    """A FastAPI dependency that requires ``Authorization: Bearer <token>``."""

    def __init__(self, token: str) -> None:
        self._expected = token.encode("utf-8")

    async def __call__(self, credentials: Credentials) -> None:
        if credentials is None:
            raise ApiError(
                401,
                "missing bearer token: send `Authorization: Bearer <WORKFLOW_API_TOKEN>`",
                headers={"WWW-Authenticate": _CHALLENGE},
            )
        given = credentials.credentials.encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, self._expected):
            raise ApiError(
                401,
                "invalid bearer token",
                headers={"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'},
            )


def bearer_auth(token: str) -> Callable[..., Awaitable[None]]:
    """The dependency checking ``token`` (see the module docstring)."""
    return BearerAuth(token)


class BodyLimitMiddleware:
    """ASGI middleware refusing request bodies above ``max_bytes`` with 413."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        limit = self.max_bytes

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside the app: FastAPI passes HTTPException through
                    # its body reading and the API's handler answers 413.
                    raise HTTPException(413, _too_large(limit))
            return message

        await self.app(scope, limited, send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(error_body(413, _too_large(self.max_bytes)).model_dump(mode="json"))
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})


def _too_large(limit: int) -> str:
    return f"request body larger than {limit} bytes"


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
