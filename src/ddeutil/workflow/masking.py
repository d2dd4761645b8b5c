"""Secret masking: values of sensitive environment variables never leave a run.

A variable is sensitive when its name contains TOKEN, SECRET, PASSWORD, PASSWD,
KEY, CREDENTIAL or AUTH. Their values are replaced by ``***`` in log lines, run
records, CLI output and API responses. The :class:`Masker` is built from an
environment mapping at the edge and passed in, like the settings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MASK", "SENSITIVE_NAME", "Masker"]

MASK = "***"
SENSITIVE_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|KEY|CREDENTIAL|AUTH", re.IGNORECASE)
# Very short values (e.g. "1", "on") would mask ordinary words everywhere.
_MIN_SECRET_LENGTH = 4


class Masker:
    """Replaces known secret values inside strings and nested data."""

    def __init__(self, secrets: frozenset[str] = frozenset()) -> None:
        self._secrets = frozenset(s for s in secrets if len(s) >= _MIN_SECRET_LENGTH)
        self._pattern = (
            re.compile("|".join(re.escape(s) for s in sorted(self._secrets, key=len, reverse=True)))
            if self._secrets
            else None
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Masker:
        """Collect the values of every sensitive variable of ``environ``."""
        return cls(frozenset(v for k, v in environ.items() if SENSITIVE_NAME.search(k) and v))

    def with_values(self, *values: str) -> Masker:
        """Return a masker that also hides ``values`` (e.g. secrets passed in a stage env)."""
        return Masker(self._secrets | frozenset(values))

    @property
    def active(self) -> bool:
        return self._pattern is not None

    def text(self, value: str) -> str:
        """Mask every secret inside ``value``."""
        if self._pattern is None:
            return value
        return self._pattern.sub(MASK, value)

    def clipped(self, value: str, *, cut_before: bool = False, cut_after: bool = False) -> str:
        """Mask a piece cut out of a longer text: whole secrets, and a secret cut in two.

        A secret that straddled a cut shows only part of itself, which
        :meth:`text` cannot recognise: the longest start of a secret that ends
        the piece (``cut_after``), and the longest end of a secret that begins
        it (``cut_before``), are replaced by ``***`` too.
        """
        masked = self.text(value)
        for secret in self._secrets if self._pattern is not None else ():
            longest = min(len(secret) - 1, len(masked))
            if cut_after:
                for size in range(longest, 0, -1):
                    if masked.endswith(secret[:size]):
                        masked = masked[:-size] + MASK
                        break
            if cut_before:
                for size in range(longest, 0, -1):
                    if masked.startswith(secret[-size:]):
                        masked = MASK + masked[size:]
                        break
        return masked

    def data(self, value: Any) -> Any:
        """Mask strings anywhere inside dicts, lists and tuples; other values pass."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        return value
