"""Secret masking: values of sensitive environment variables never leave a run.

A variable is sensitive when its name contains TOKEN, SECRET, PASSWORD, PASSWD,
KEY, CREDENTIAL or AUTH. Their values are replaced by ``***`` in log lines, run
records, CLI output, API responses and what stage code prints. The
:class:`Masker` is built from an environment mapping at the edge and passed in,
like the settings.

Policy:

* **Escaped forms too.** A secret is also found as Python's ``repr()`` and as
  JSON write it (quotes and backslashes escaped, e.g. inside a ``KeyError``
  message or a JSON log line), up to two levels of escaping deep.
* **Keys too.** :meth:`Masker.data` masks mapping keys as well as values.
* **Short values only whole.** A secret shorter than :data:`MIN_SECRET_LENGTH`
  characters (``"1"``, ``"on"``) would turn ordinary words into ``***`` if it
  were masked inside text, so it is masked only where it is a whole value or a
  whole line (a string that equals it, a key, a printed line), never inside
  other text. :meth:`Masker.from_env` logs a warning naming such variables.
* **Mask first, then shorten.** Whoever truncates a message masks it before
  cutting it (a cut secret is no longer found).
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["MASK", "MIN_SECRET_LENGTH", "SENSITIVE_NAME", "Masker", "escaped_forms"]

logger = logging.getLogger(__name__)

MASK = "***"
SENSITIVE_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|KEY|CREDENTIAL|AUTH", re.IGNORECASE)
MIN_SECRET_LENGTH = 4
"""Shorter secrets are masked only as whole values or whole lines."""
_ESCAPE_DEPTH = 2
_PLAIN = (bool, int, float, type(None))


def escaped_forms(secret: str) -> frozenset[str]:
    """``secret`` as written inside ``repr()`` and JSON strings (and itself).

    Each level escapes the forms of the previous one again, so a ``repr()``
    inside a JSON string is found too.
    """
    forms = {secret}
    frontier = {secret}
    for _ in range(_ESCAPE_DEPTH):
        found: set[str] = set()
        for form in frontier:
            found.add(repr(form)[1:-1])
            # Both quote kinds present: repr() escapes the single quotes.
            found.add(repr(form + "'\"")[1:-4])
            found.add(json.dumps(form)[1:-1])
            found.add(json.dumps(form, ensure_ascii=False)[1:-1])
        frontier = found - forms
        forms |= found
    return frozenset(forms)


@dataclass(frozen=True, slots=True)
class _Compiled:
    """The search patterns of one set of secrets (built once per set, see :func:`_compile`)."""

    forms: tuple[str, ...]
    longest: int
    firsts: frozenset[str]
    pattern: re.Pattern[str] | None
    short: frozenset[str]
    lines: re.Pattern[str] | None


@functools.lru_cache(maxsize=256)
def _compile(secrets: frozenset[str]) -> _Compiled:
    """Patterns for ``secrets``, cached: every run builds a masker, most from the same set."""
    long = [s for s in secrets if len(s) >= MIN_SECRET_LENGTH]
    short = sorted(s for s in secrets if len(s) < MIN_SECRET_LENGTH)
    forms = tuple(sorted({f for s in long for f in escaped_forms(s)}, key=len, reverse=True))
    pattern = re.compile("|".join(re.escape(f) for f in forms)) if forms else None
    # Short secrets: a whole value, or a whole line of a longer text (seen after a
    # newline added in front; a literal first character keeps the scan fast).
    whole = "|".join(re.escape(s) for s in sorted(short, key=len, reverse=True))
    lines = re.compile(f"\n(?:{whole})(?=\r?(?:\n|\\Z))") if short else None
    return _Compiled(
        forms=forms,
        longest=len(forms[0]) if forms else 0,
        firsts=frozenset(f[0] for f in forms),
        pattern=pattern,
        short=frozenset(short),
        lines=lines,
    )


class Masker:
    """Replaces known secret values inside strings and nested data."""

    def __init__(self, secrets: frozenset[str] = frozenset()) -> None:
        self._secrets = frozenset(s for s in secrets if s)
        compiled = _compile(self._secrets)
        self._forms = compiled.forms
        self._longest = compiled.longest
        self._firsts = compiled.firsts
        self._pattern = compiled.pattern
        self._short = compiled.short
        self._lines = compiled.lines

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Masker:
        """Collect the values of every sensitive variable of ``environ``."""
        found = {k: v for k, v in environ.items() if SENSITIVE_NAME.search(k) and v}
        short = sorted(k for k, v in found.items() if len(v) < MIN_SECRET_LENGTH)
        if short:
            logger.warning(
                "secret variables with values shorter than %d characters are masked only "
                "where they are a whole value or line: %s",
                MIN_SECRET_LENGTH,
                ", ".join(short),
            )
        return cls(frozenset(found.values()))

    def with_values(self, *values: str) -> Masker:
        """Return a masker that also hides ``values`` (e.g. secrets passed in a stage env)."""
        return Masker(self._secrets | frozenset(values))

    def merged(self, other: Masker) -> Masker:
        """Return a masker that hides the secrets of both."""
        if other._secrets <= self._secrets:
            return self
        return Masker(self._secrets | other._secrets)

    @property
    def active(self) -> bool:
        return self._pattern is not None or self._lines is not None

    def text(self, value: str) -> str:
        """Mask every secret inside ``value`` (short ones only as whole lines)."""
        if self._pattern is not None:
            value = self._pattern.sub(MASK, value)
        if self._lines is not None:
            if "\n" not in value:
                return MASK if value.rstrip("\r") in self._short else value
            value = self._lines.sub("\n" + MASK, "\n" + value)[1:]
        return value

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
        """Mask strings anywhere inside dicts, lists, tuples and sets, keys included.

        Lists, tuples and sets come back as lists. Other values pass unchanged,
        unless their text (``str()``, what a JSON encoder falls back to) holds a
        secret: then their masked text replaces them. Two keys that mask to the
        same text keep the later value.
        """
        if not self.active:
            return value
        return self._data(value)

    def _data(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, _PLAIN):
            return value
        if isinstance(value, Mapping):
            return {self._key(k): self._data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self._data(v) for v in value]
        text = str(value)
        masked = self.text(text)
        return value if masked == text else masked

    def _key(self, key: Any) -> Any:
        if isinstance(key, str):
            return self.text(key)
        if isinstance(key, _PLAIN):
            return key
        text = str(key)
        masked = self.text(text)
        return key if masked == text else masked

    def release_point(self, pending: str, limit: int) -> int:
        """How much of a stream's ``pending`` text can be masked and written now.

        Only whole lines are released (a short secret is recognised as a whole
        line), unless more than ``limit`` characters wait without a newline. The
        point is moved back before any secret it would cut and before any tail
        that may still become a secret with the next write.
        """
        cut = pending.rfind("\n") + 1
        if cut == 0:
            if len(pending) <= limit:
                return 0
            cut = len(pending)
        if self._pattern is None:
            return cut
        for start in range(max(0, cut - self._longest + 1), cut):
            if pending[start] in self._firsts:
                tail = pending[start:]
                if any(len(f) > len(tail) and f.startswith(tail) for f in self._forms):
                    cut = start
                    break
        for match in self._pattern.finditer(pending, 0, len(pending)):
            if match.start() >= cut:
                break
            if cut < match.end():
                return match.start()
        return cut
