"""Exceptions shared by datasock's components.

Each maps to a WAMP error URI (see :mod:`datasock.wire`) so that a caller gets a
clear, machine-readable reason rather than a traceback.
"""


class DatasockError(Exception):
    """Base class of datasock's own errors."""


class InvalidArgument(DatasockError, ValueError):
    """A caller passed an argument of the wrong type or out of range."""
