"""Delivering one notice: the webhook POST and the email.

Both raise :class:`DeliveryError` for a failed attempt, saying whether trying
again can help (``permanent``): a webhook answering 2xx is delivered; 408, 429
and 5xx, a timeout or a refused connection are retried; any other answer
(a 4xx, a redirect: redirects are not followed, so a notice never lands on
another host) is permanent. Messages never hold the URL or the SMTP password.
"""

from __future__ import annotations

import http.client
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit

from ..__about__ import __version__

__all__ = ["TIMEOUT", "DeliveryError", "post_webhook", "send_email"]

TIMEOUT = 10.0
"""Seconds one delivery attempt may take (connect and answer)."""
_RETRIED_STATUSES = frozenset({408, 425, 429})


class DeliveryError(Exception):
    """One delivery attempt failed; ``permanent``: trying again cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx answer is raised as an HTTPError


_OPENER = urllib.request.build_opener(_NoRedirect)


def post_webhook(url: str, body: bytes, *, key: str, timeout: float = TIMEOUT) -> None:
    """POST ``body`` (JSON) to ``url`` with the header ``Idempotency-Key: key``.

    Raises:
        DeliveryError: the receiver did not answer 2xx (see the module).
    """
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked (http/https) at load
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Idempotency-Key": key,
            "User-Agent": f"ddeutil-workflow/{__version__}",
        },
    )
    try:
        with _OPENER.open(request, timeout=timeout) as answer:
            status = int(answer.status)
    except urllib.error.HTTPError as exc:
        status = int(exc.code)
        exc.close()
    except (OSError, ValueError, http.client.HTTPException) as exc:  # refused, timeouts, cut
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise DeliveryError(f"webhook unreachable: {type(exc).__name__}: {reason}") from None
    if 200 <= status < 300:
        return
    retried = status >= 500 or status in _RETRIED_STATUSES
    raise DeliveryError(f"webhook answered HTTP {status}", permanent=not retried)


def send_email(
    smtp_url: str,
    *,
    sender: str,
    to: Sequence[str],
    subject: str,
    text: str,
    key: str,
    timeout: float = TIMEOUT,
) -> None:
    """Mail ``text`` to ``to`` through ``smtp_url`` (``smtp://`` with STARTTLS if offered, ``smtps://``).

    A login (a user in the URL) is only ever sent over TLS.

    Raises:
        DeliveryError: the server refused the mail or could not be reached.
    """
    parts = urlsplit(smtp_url)
    host, secure = parts.hostname or "localhost", parts.scheme == "smtps"
    port = parts.port or (465 if secure else 25)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Message-ID"] = f"<{key.replace(':', '.')}@ddeutil-workflow>"
    message.set_content(text)
    context = ssl.create_default_context()
    try:
        smtp: smtplib.SMTP = (
            smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
            if secure
            else smtplib.SMTP(host, port, timeout=timeout)
        )
        with smtp:
            smtp.ehlo_or_helo_if_needed()
            if not secure and smtp.has_extn("starttls"):
                smtp.starttls(context=context)
                secure = True
            if parts.username:
                if not secure:
                    raise DeliveryError(
                        "mail server offers no TLS: the password is not sent in the clear",
                        permanent=True,
                    )
                smtp.login(unquote(parts.username), unquote(parts.password or ""))
            smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryError(f"mail server refused the recipients: {exc}", permanent=True) from None
    except smtplib.SMTPAuthenticationError:
        raise DeliveryError("mail server refused the login", permanent=True) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"mail not sent: {type(exc).__name__}: {exc}") from None
