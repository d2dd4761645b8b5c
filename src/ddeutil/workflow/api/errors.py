"""The API's error type and its one response shape.

Routes and the service raise :class:`ApiError`; the handlers installed by
:func:`~ddeutil.workflow.api.create_app` turn it (and FastAPI's own validation
and routing errors) into an :class:`~ddeutil.workflow.api.models.ErrorResponse`
body with the status code, so every 4xx/5xx answer looks the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .models import ErrorDetail, ErrorInfo, ErrorResponse

__all__ = ["CODES", "ApiError", "error_body"]

CODES: Mapping[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    500: "internal_error",
    503: "unavailable",
}
"""Default ``code`` for a status when the raiser gives none."""


class ApiError(Exception):
    """An error answered to the client with ``status`` and an :class:`ErrorResponse`.

    Args:
        status: HTTP status code.
        message: Summary for humans (masked before it is sent).
        code: Stable machine-readable code; default from :data:`CODES`.
        details: One entry per problem (e.g. per bad param).
        run_id: The existing run of a ``duplicate_run`` conflict.
        headers: Extra response headers (``WWW-Authenticate``, ``Location``).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: Sequence[ErrorDetail] = (),
        run_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or CODES.get(status, "error")
        self.details = tuple(details)
        self.run_id = run_id
        self.headers = dict(headers or {})

    def body(self) -> ErrorResponse:
        return error_body(
            self.status, self.message, code=self.code, details=self.details, run_id=self.run_id
        )


def error_body(
    status: int,
    message: str,
    *,
    code: str | None = None,
    details: Sequence[ErrorDetail] = (),
    run_id: str | None = None,
) -> ErrorResponse:
    """Build the error body for ``status`` (code defaults from :data:`CODES`)."""
    return ErrorResponse(
        error=ErrorInfo(
            code=code or CODES.get(status, "error"),
            message=message,
            details=list(details),
            run_id=run_id,
        )
    )
