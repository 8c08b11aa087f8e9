"""Exceptions shared by datasock's components, and the exit status each one means.

Each maps to a WAMP error URI (see :mod:`datasock.wire`) so that a caller gets a
clear, machine-readable reason rather than a traceback. A process ends with
:func:`exit_status` of the error that stopped it (docs/cli.rst, "Exit status").
"""

#: the exit status rule of every datasock command (docs/cli.rst)
EXIT_OK = 0
#: something failed while running: the router is unreachable, a call timed out, a port is held...
EXIT_FAILURE = 1
#: the command line or a setting is wrong; nothing was started (fix the configuration)
EXIT_USAGE = 2


class DatasockError(Exception):
    """Base class of datasock's own errors."""


class InvalidArgument(DatasockError, ValueError):
    """A caller passed an argument of the wrong type or out of range."""


class ConfigError(InvalidArgument):
    """The settings refuse to let a process start, although each value parses (e.g. an
    exposed router without provisioned secrets)."""


def exit_status(exc: BaseException) -> int:
    """The exit status a process that stopped on ``exc`` ends with.

    :data:`EXIT_USAGE` for a bad argument or setting (:class:`InvalidArgument`,
    including :class:`ConfigError`), :data:`EXIT_FAILURE` for anything else.
    """
    return EXIT_USAGE if isinstance(exc, InvalidArgument) else EXIT_FAILURE
