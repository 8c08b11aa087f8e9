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
#: what each exit status means, for ``datasock --help`` and the generated table of docs/cli.rst
EXIT_MEANINGS = {
    EXIT_OK: "success, or stopped on request (Ctrl-C, SIGTERM); `datasock status`: every check passed",
    EXIT_FAILURE: "a failure while running: the router is not reachable, the hub or a node is not "
    "running, a call timed out, the archive database does not answer, a port to listen on is held "
    "by another process, a child of `datasock up` did not start; `datasock status`: a check failed",
    EXIT_USAGE: "usage or configuration: a command line that does not parse, a bad argument or time, "
    "a setting that does not parse or does not go with the others, a router or HTTP bridge refusing "
    "to listen beyond loopback without provisioned secrets, a node name another session serves; "
    "nothing was started",
}


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
