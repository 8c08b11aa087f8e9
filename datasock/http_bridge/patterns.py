"""Globs and regular expressions from requests, matched in bounded time and memory.

Regular expressions (the ``=~`` and ``!~`` ad hoc filters) run on RE2 (the
``google-re2`` package): its time is linear in the text matched whatever the
pattern, so ``(.*)*!`` cannot freeze the bridge, and it has no backreferences or
lookaround (a pattern using them is refused). Globs (``sim::thermometer_*``) are
translated by :mod:`fnmatch`, whose patterns cannot backtrack either (every
``*`` but the last is an atomic group), and compiled through :mod:`re`'s
bounded cache, not fnmatch's (32768 entries). Every pattern is at most
:data:`MAX_PATTERN` characters.
"""
from __future__ import annotations

import fnmatch
import re
from typing import Callable, Iterable

import re2

from .errors import RequestError

#: the longest glob or regular expression a request may use, in characters
MAX_PATTERN = 1000
#: memory RE2 may use for one compiled regular expression, bytes
REGEX_MEMORY = 1 << 20


def is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _check_length(text: str, what: str) -> None:
    if len(text) > MAX_PATTERN:
        raise RequestError(f"{what} is {len(text)} characters long; at most {MAX_PATTERN} are allowed")


def regex(text: str, what: str = "regex") -> Callable[[str], bool]:
    """``search`` of the RE2 regular expression ``text``: True where it occurs in a string.

    RequestError (400) for a pattern too long, malformed, or using what RE2 lacks.
    """
    _check_length(text, what)
    options = re2.Options()
    options.log_errors = False
    options.max_mem = REGEX_MEMORY
    try:
        compiled = re2.compile(text, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RequestError(f"{what} {text!r} is not a regular expression RE2 accepts: {reason} "
                           f"(RE2 has no backreferences or lookaround)") from None
    return lambda s: compiled.search(s) is not None


def glob(pattern: str, ignore_case: bool = False, what: str = "glob") -> Callable[[str], bool]:
    """A whole-string matcher for the shell-style ``pattern`` (``*``, ``?``, ``[...]``)."""
    _check_length(pattern, what)
    compiled = re.compile(fnmatch.translate(pattern), re.IGNORECASE if ignore_case else 0)
    return lambda s: compiled.match(s) is not None


def glob_filter(names: Iterable[str], pattern: str, what: str = "glob") -> list[str]:
    """The names ``pattern`` matches (case-sensitive, as :func:`fnmatch.filter` on POSIX)."""
    match = glob(pattern, what=what)
    return [n for n in names if match(n)]
