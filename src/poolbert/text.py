"""The words and numbers poolbert shows: an error's first line, secrets masked, numbers
formatted, comma-separated lists parsed. One helper for each, used everywhere."""

from __future__ import annotations

import math
import re
from typing import Any


def first_line(exc: BaseException) -> str:
    """An exception as one line: its message's first line, else its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def redact(text: str, *secrets: str | None) -> str:
    """Passwords out of a text: `user:password@host` -> `user:***@host`, `password=...` query
    values -> `password=***`, and every given secret (a token, a URL's password) -> `***`."""
    text = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)
    text = re.sub(r"(?i)(password=)[^&\s]*", r"\1***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def url_password(url: str) -> str | None:
    """The password of `scheme://user:password@host/...`, if it has one."""
    match = re.search(r"://[^:/@\s]*:([^@\s]*)@", url)
    return match.group(1) if match and match.group(1) else None


def comma_list(text: str | None) -> list[str] | None:
    """"a, b,,c" -> ["a", "b", "c"]; None stays None (a flag not given)."""
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def fmt_number(value: Any, digits: int = 4, small: float = 0.0) -> str:
    """One number format for tables: "–" for none or non-finite, yes/no for booleans, ints as
    they are, floats with `digits` decimals, or 3 significant digits below `small` (so a
    learning rate of 2e-05 does not print as 0.0000)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != 0 and abs(value) < small:
            return f"{value:.3g}"
        return f"{value:.{digits}f}"
    return str(value)


def plural(n: int, noun: str) -> str:
    """A count with its noun: "1 trial", "3 trials"."""
    return f"{n} {noun}" + ("" if n == 1 else "s")
