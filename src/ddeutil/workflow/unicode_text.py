"""Text that can leave the process: no lone surrogates.

A Python ``str`` may hold surrogate code points (U+D800 to U+DFFF) on their own,
for instance from the JSON text ``"\\ud800"``. Such a string is not Unicode text:
it cannot be encoded as UTF-8, so a database, a log file or an HTTP response
refuses it. The rule, applied at two depths:

* **Params reject it.** A param value (or a key inside a ``map`` value) holding
  a lone surrogate is a param problem naming the param
  (:func:`find_lone_surrogate`): the API answers 422, the CLI and
  ``Pipeline.execute`` raise ``ParamError``.
* **The run store escapes it.** Anything else that reaches a run record (stage
  outputs, error messages, undeclared params of a library call) is stored with
  each lone surrogate written as the six characters ``\\ud800``
  (:func:`escape_lone_surrogates`), so every record can be read back and served.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["escape_data", "escape_lone_surrogates", "find_lone_surrogate"]

_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def escape_lone_surrogates(text: str) -> str:
    """``text`` with each lone surrogate written as its ``\\uXXXX`` escape."""
    return _SURROGATE.sub(_escape, text)


def find_lone_surrogate(value: Any) -> str | None:
    """The first lone surrogate in ``value`` (strings, keys, lists, dicts), escaped.

    Returns:
        ``"\\ud800"`` (the escape text) for the first one found, else ``None``.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found = _SURROGATE.search(item)
            if found is not None:
                return _escape(found)
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
    return None


def escape_data(value: Any) -> Any:
    """``value`` with :func:`escape_lone_surrogates` applied to every string and key.

    Containers are rebuilt as dicts and lists; other values pass unchanged.
    """
    if isinstance(value, str):
        return escape_lone_surrogates(value)
    if isinstance(value, Mapping):
        return {escape_data(k): escape_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [escape_data(v) for v in value]
    return value
