"""Extra nodes: the operator's own node commands, run and watched by ``datasock up``.

Three layers, from pure to thin shell:

* the nodes file (TOML, :func:`parse_nodes`): one ``[[node]]`` table per node with
  its command, working directory, environment and the data node name it registers;
  validated strictly, bounded in size;
* :class:`Watchdog`: a pure, clock-driven state machine. Events in (a child started
  or exited, the hub listed these nodes at ``t``, the hub could not be asked, the
  router restarted); commands out (:class:`Restart` a child). It restarts a node
  whose WAMP session is gone: one not listed by the hub some time after it started,
  one that dropped out of the list and did not come back, and, as soon as a restarted
  router accepts connections again, every node that does not rejoin by itself
  (sisock's nodes: autobahn's ``ApplicationRunner`` never reconnects);
* the shell: :class:`NodeMonitor` feeds the watchdog from the supervisor's events and
  from the hub watcher, a small child process (``python -m datasock.extranodes watch``)
  that asks the hub for ``consumer.get_data_node`` every :data:`POLL_INTERVAL` seconds
  and prints each answer as one JSON line.

A node that exits is restarted by the supervisor's :class:`~datasock.supervisor.Backoff`
like every other child; a watchdog restart is a SIGTERM that ends the same way.
"""
from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import re
import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any, Collection, Iterable, Mapping, Sequence

from .errors import InvalidArgument

#: the nodes file ``datasock up`` reads from the state directory when DATASOCK_NODES_FILE is unset
NODES_FILE_NAME = "nodes.toml"
MAX_FILE_BYTES = 256 * 1024
MAX_NODES = 64
MAX_ARGS = 256
MAX_ARG_CHARS = 4096
MAX_ENV = 256
MAX_ENV_VALUE_CHARS = 32 * 1024
MAX_GRACE = 3600.0
#: a command's first word that stands for the Python running datasock
PYTHON_TOKEN = "{python}"
DEFAULT_START_GRACE = 30.0
DEFAULT_REJOIN_GRACE = 15.0
#: seconds between two questions of the hub watcher
POLL_INTERVAL = 2.0
#: the supervisor's name of the hub watcher process
WATCHER_NAME = "node-watch"
#: names of ``datasock up``'s own children (whether or not this stack runs them all)
RESERVED_CHILD_NAMES = frozenset({"router", "mosquitto", "mqtt", "hub", "sim", "host", "archive-scan",
                                  "archive", "ocs", "http", "recorder", WATCHER_NAME})

_CHILD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,63}")
_DATA_NODE_NAME = re.compile(r"[A-Za-z0-9_\-]{1,128}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,255}")
_KEYS = {
    "name": "the node's name in `datasock up`'s log (letters, digits, '_' or '-')",
    "command": "the program and its arguments, a list of strings",
    "cwd": "working directory (relative to the nodes file's directory)",
    "env": "environment variables set on top of `datasock up`'s own",
    "data_node": "the data node name it registers with the hub; watched when given",
    "reconnects": "true when it rejoins by itself after the router restarts",
    "start_grace": "seconds it may take from start to being listed by the hub",
    "rejoin_grace": "seconds it may stay unlisted before it is restarted",
}


class NodesFileError(InvalidArgument):
    """The nodes file cannot be used; the message says where and why."""


@dataclasses.dataclass(frozen=True)
class ExtraNode:
    """One node of the nodes file, validated."""
    name: str
    command: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]
    data_node: str | None = None
    reconnects: bool = False
    start_grace: float = DEFAULT_START_GRACE
    rejoin_grace: float = DEFAULT_REJOIN_GRACE


# == the nodes file ========================================================================
def parse_nodes(text: str, base_dir: Path, source: str = "nodes file",
                reserved: Collection[str] = RESERVED_CHILD_NAMES,
                python: str = sys.executable) -> list[ExtraNode]:
    """The nodes of a nodes file's ``text``; raises :class:`NodesFileError` naming what is wrong.

    Relative working directories are taken from ``base_dir`` (the file's directory),
    which is also the default one. ``reserved`` are names the node may not take
    (``datasock up``'s own children); a command's first word ``{python}`` becomes
    ``python``.
    """
    if len(text) > MAX_FILE_BYTES:
        raise NodesFileError(f"{source}: larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise NodesFileError(f"{source}: not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - {"node"})
    if unknown:
        raise NodesFileError(f"{source}: unknown top-level key {unknown[0]!r} "
                             "(only [[node]] tables belong here)")
    tables = doc.get("node", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise NodesFileError(f"{source}: 'node' must be an array of tables, written [[node]]")
    if len(tables) > MAX_NODES:
        raise NodesFileError(f"{source}: {len(tables)} nodes, at most {MAX_NODES}")
    nodes: list[ExtraNode] = []
    names: set[str] = set()
    data_nodes: dict[str, str] = {}
    for index, table in enumerate(tables, 1):
        node = _parse_node(table, f"{source}: node {index}", base_dir, reserved, python)
        where = f"{source}: node {index} ({node.name!r})"
        if node.name in names:
            raise NodesFileError(f"{where}: the name {node.name!r} is used twice")
        if node.data_node is not None and node.data_node in data_nodes:
            raise NodesFileError(f"{where}: data node {node.data_node!r} is also registered by "
                                 f"{data_nodes[node.data_node]!r}; the hub lets only one serve a name")
        names.add(node.name)
        if node.data_node is not None:
            data_nodes[node.data_node] = node.name
        nodes.append(node)
    return nodes


def _parse_node(table: dict, where: str, base_dir: Path, reserved: Collection[str],
                python: str) -> ExtraNode:
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise NodesFileError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(_KEYS)})")
    if "name" not in table:
        raise NodesFileError(f"{where}: missing 'name' ({_KEYS['name']})")
    name = table["name"]
    if not isinstance(name, str) or not _CHILD_NAME.fullmatch(name):
        raise NodesFileError(f"{where}: 'name' must be 1 to 64 letters, digits, '_' or '-' "
                             f"(starting with a letter or digit), got {name!r}")
    where = f"{where} ({name!r})"
    if name in reserved:
        raise NodesFileError(f"{where}: the name {name!r} is taken by one of datasock's own processes")
    if "command" not in table:
        raise NodesFileError(f"{where}: missing 'command' ({_KEYS['command']})")
    command = table["command"]
    if not isinstance(command, list) or not command:
        raise NodesFileError(f"{where}: 'command' must be a non-empty list of strings, "
                             f"e.g. [\"{PYTHON_TOKEN}\", \"my_node.py\"], got {_short(command)}")
    if len(command) > MAX_ARGS:
        raise NodesFileError(f"{where}: 'command' has {len(command)} words, at most {MAX_ARGS}")
    for i, word in enumerate(command):
        _check_text(word, f"{where}: command[{i}]", MAX_ARG_CHARS)
    if command[0] == "":
        raise NodesFileError(f"{where}: command[0], the program, is empty")
    if command[0] == PYTHON_TOKEN:
        command = [python, *command[1:]]
    cwd = table.get("cwd", ".")
    _check_text(cwd, f"{where}: 'cwd'", MAX_ARG_CHARS)
    if cwd == "":
        raise NodesFileError(f"{where}: 'cwd' is empty (leave it out for the nodes file's directory)")
    env = table.get("env", {})
    if not isinstance(env, dict):
        raise NodesFileError(f"{where}: 'env' must be a table of strings, written [node.env], "
                             f"got {_short(env)}")
    if len(env) > MAX_ENV:
        raise NodesFileError(f"{where}: 'env' has {len(env)} variables, at most {MAX_ENV}")
    for key, value in env.items():
        if not _ENV_NAME.fullmatch(key):
            raise NodesFileError(f"{where}: env: {key!r} is not a variable name")
        _check_text(value, f"{where}: env.{key}", MAX_ENV_VALUE_CHARS)
    data_node = table.get("data_node")
    if data_node is not None and (not isinstance(data_node, str) or not _DATA_NODE_NAME.fullmatch(data_node)):
        raise NodesFileError(f"{where}: 'data_node' must be the node's name as `datasock nodes` lists it "
                             f"(1 to 128 letters, digits, '_' or '-'), got {_short(data_node)}")
    reconnects = table.get("reconnects", False)
    if not isinstance(reconnects, bool):
        raise NodesFileError(f"{where}: 'reconnects' must be true or false, got {_short(reconnects)}")
    graces = {key: _grace(table, key, default, where)
              for key, default in (("start_grace", DEFAULT_START_GRACE), ("rejoin_grace", DEFAULT_REJOIN_GRACE))}
    if data_node is None:
        given = [key for key in ("reconnects", *graces) if key in table]
        if given:
            raise NodesFileError(f"{where}: {given[0]!r} needs 'data_node' (only a watched node has it)")
    return ExtraNode(name=name, command=tuple(command), cwd=Path(base_dir, cwd), env=dict(env),
                     data_node=data_node, reconnects=reconnects, **graces)


def _check_text(value: Any, where: str, limit: int) -> None:
    if not isinstance(value, str):
        raise NodesFileError(f"{where} must be a string, got {_short(value)}")
    if len(value) > limit:
        raise NodesFileError(f"{where} is longer than {limit} characters")
    if "\0" in value:
        raise NodesFileError(f"{where} contains a NUL character")


def _grace(table: dict, key: str, default: float, where: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 1 <= value <= MAX_GRACE:
        raise NodesFileError(f"{where}: {key!r} must be a number of seconds from 1 to {MAX_GRACE:g}, "
                             f"got {_short(value)}")
    return float(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def nodes_file_path(settings) -> tuple[Path | None, bool]:
    """The nodes file to read and whether it must exist.

    DATASOCK_NODES_FILE when set (it must exist), else ``nodes.toml`` in the
    state directory when it is there.
    """
    if settings.nodes_file is not None:
        return settings.nodes_file, True
    return settings.home / NODES_FILE_NAME, False


def load_nodes_file(path: Path, reserved: Collection[str] = RESERVED_CHILD_NAMES,
                    python: str = sys.executable) -> list[ExtraNode]:
    """Read and check a nodes file. It may not be writable by others: it runs commands."""
    try:
        st = path.stat()
    except OSError as exc:
        raise NodesFileError(f"cannot read the nodes file {path}: {exc.strerror}") from None
    if not path.is_file():
        raise NodesFileError(f"the nodes file {path} is not a regular file")
    if st.st_mode & 0o002:
        raise NodesFileError(f"the nodes file {path} is writable by every user (mode "
                             f"{st.st_mode & 0o777:o}); it runs commands: `chmod o-w {path}`")
    if st.st_uid not in (os.getuid(), 0):
        raise NodesFileError(f"the nodes file {path} belongs to another user (uid {st.st_uid}); "
                             "it runs commands as you")
    if st.st_size > MAX_FILE_BYTES:
        raise NodesFileError(f"the nodes file {path} is larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NodesFileError(f"cannot read the nodes file {path}: {exc}") from None
    nodes = parse_nodes(text, path.parent.absolute(), str(path), reserved, python)
    for node in nodes:
        check_runnable(node, str(path))
    return nodes


def check_runnable(node: ExtraNode, source: str) -> None:
    """The node's working directory exists and its program can be found (before anything starts)."""
    where = f"{source}: node {node.name!r}"
    if not node.cwd.is_dir():
        raise NodesFileError(f"{where}: working directory {node.cwd} does not exist")
    program = node.command[0]
    if "/" in program:
        found = Path(node.cwd, program)
        if not (found.is_file() and os.access(found, os.X_OK)):
            raise NodesFileError(f"{where}: {found} is not an executable file")
    else:
        path = node.env.get("PATH", os.environ.get("PATH", os.defpath))
        if shutil.which(program, path=path) is None:
            raise NodesFileError(f"{where}: program {program!r} not found on PATH")


def node_environment(base: Mapping[str, str], stack: Mapping[str, str],
                     own: Mapping[str, str]) -> dict[str, str]:
    """A node's environment: ``datasock up``'s (``base``), then where the stack's router is
    (``stack``: the variables sisock and datasock nodes read), then the file's ``env``."""
    return {**base, "PYTHONUNBUFFERED": "1", **stack, **own}


def stack_environment(settings) -> dict[str, str]:
    """The variables that point a sisock or datasock node at this stack's router."""
    return {"CROSSBAR_HOST": settings.crossbar_host, "CROSSBAR_TLS_PORT": str(settings.tls_port),
            "CROSSBAR_OCS_PORT": str(settings.ocs_port), "DATASOCK_HOME": str(settings.home)}


# == the watchdog ==========================================================================
@dataclasses.dataclass(frozen=True)
class Restart:
    """Command: stop child ``child`` so that the supervisor starts it again."""
    child: str
    reason: str


class Phase(enum.Enum):
    STOPPED = "stopped"          # no process (not started yet, or waiting for its restart)
    STARTING = "starting"        # running, not listed by the hub since it started
    UP = "up"                    # listed by the hub
    MISSING = "missing"          # was up (or the router restarted), not listed now
    RESTARTING = "restarting"    # a Restart was sent; waiting for the process to end


@dataclasses.dataclass
class _State:
    phase: Phase = Phase.STOPPED
    #: when to restart it if it is still not listed (STARTING, MISSING)
    deadline: float | None = None


class Watchdog:
    """Decides when a watched node's WAMP session is gone; pure, driven by the caller's clock.

    A node is restarted when

    * it is not listed ``start_grace`` seconds after it started;
    * it was listed and has not been for ``rejoin_grace`` seconds;
    * the router restarted and accepts connections again, and the node does not
      rejoin by itself (``reconnects`` false); one that does gets ``rejoin_grace``.

    While the hub cannot be asked (no listing yet, the router or the watcher down, a
    failed question) no deadline fires: nothing is killed for want of information.
    The first listing after such a gap gives every unlisted node at least
    ``rejoin_grace`` more seconds.
    """

    def __init__(self, nodes: Iterable[ExtraNode]):
        self._nodes = {n.name: n for n in nodes if n.data_node is not None}
        self._state = {name: _State() for name in self._nodes}
        self._blind = True

    @property
    def watched(self) -> frozenset[str]:
        return frozenset(self._nodes)

    def phase(self, child: str) -> Phase:
        return self._state[child].phase

    def deadline(self, child: str) -> float | None:
        return self._state[child].deadline

    def child_started(self, child: str, t: float) -> list[Restart]:
        if child in self._state:
            self._state[child] = _State(Phase.STARTING, t + self._nodes[child].start_grace)
        return self.tick(t)

    def child_exited(self, child: str, t: float) -> list[Restart]:
        if child in self._state:
            self._state[child] = _State(Phase.STOPPED)
        return self.tick(t)

    def hub_unknown(self, t: float) -> list[Restart]:
        """The hub could not be asked (router or watcher down, a failed question)."""
        self._blind = True
        return []

    def router_restarted(self, t: float) -> list[Restart]:
        """A restarted router accepts connections: every session of before is gone."""
        self._blind = True
        out = []
        for name, st in self._state.items():
            if st.phase not in (Phase.STARTING, Phase.UP, Phase.MISSING):
                continue
            node = self._nodes[name]
            if not node.reconnects:
                st.phase, st.deadline = Phase.RESTARTING, None
                out.append(Restart(name, "the router restarted and this node does not rejoin by itself"))
            elif st.phase is Phase.UP:
                st.phase, st.deadline = Phase.MISSING, t + node.rejoin_grace
        return out

    def hub_listing(self, names: Collection[str], t: float) -> list[Restart]:
        """The hub listed the data nodes ``names`` at ``t``."""
        was_blind, self._blind = self._blind, False
        for name, st in self._state.items():
            if st.phase not in (Phase.STARTING, Phase.UP, Phase.MISSING):
                continue
            node = self._nodes[name]
            if node.data_node in names:
                st.phase, st.deadline = Phase.UP, None
            elif st.phase is Phase.UP:
                st.phase, st.deadline = Phase.MISSING, t + node.rejoin_grace
            elif was_blind:
                st.deadline = max(st.deadline, t + node.rejoin_grace)
        return self.tick(t)

    def tick(self, t: float) -> list[Restart]:
        """The restarts due at ``t``."""
        if self._blind:
            return []
        out = []
        for name, st in self._state.items():
            if st.deadline is None or t < st.deadline:
                continue
            node = self._nodes[name]
            if st.phase is Phase.STARTING:
                reason = f"data node {node.data_node!r} not listed by the hub {node.start_grace:g} s after start"
            else:
                reason = (f"data node {node.data_node!r} gone from the hub's list for {node.rejoin_grace:g} s "
                          "(its WAMP session is gone)")
            st.phase, st.deadline = Phase.RESTARTING, None
            out.append(Restart(name, reason))
        return out


# == the hub watcher's lines ===============================================================
MAX_LINE_BYTES = 1024 * 1024
MAX_LISTED = 100_000


def parse_watch_line(line: bytes) -> set[str] | None:
    """The node names of one hub watcher line, or None for "the hub could not be asked"."""
    try:
        doc = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or set(doc) != {"nodes"}:
        return None
    names = doc["nodes"]
    if not isinstance(names, list) or len(names) > MAX_LISTED or not all(isinstance(n, str) for n in names):
        return None
    return set(names)


def watch_line(names: Sequence[str] | None = None, error: str | None = None) -> str:
    """One hub watcher line (for ``names``, or for an ``error``)."""
    doc = {"nodes": list(names)} if error is None else {"error": error[:500]}
    return json.dumps(doc) + "\n"


class LineBuffer:
    """Splits bytes read from a pipe into lines; a line longer than ``limit`` is dropped."""

    def __init__(self, limit: int = MAX_LINE_BYTES):
        self.limit = limit
        self._buf = bytearray()
        self._skipping = False

    def feed(self, data: bytes) -> list[bytes]:
        lines = []
        self._buf += data
        while True:
            end = self._buf.find(b"\n")
            if end < 0:
                break
            line = bytes(self._buf[:end])
            del self._buf[:end + 1]
            if self._skipping:
                self._skipping = False
            else:
                lines.append(line)
        if len(self._buf) > self.limit:
            self._buf.clear()
            self._skipping = True
        return lines


# == the shell =============================================================================
class NodeMonitor:
    """Feeds a :class:`Watchdog` from the supervisor and the hub watcher; a Supervisor monitor.

    ``router`` is the supervisor's router child: after it is started again, the
    watchdog hears "router restarted" once ``router.ready()`` (its port answers).
    ``stale_after``: seconds without a line from the watcher that count as "the hub
    could not be asked".
    """

    def __init__(self, watchdog: Watchdog, router_name: str = "router", watcher_name: str = WATCHER_NAME,
                 stale_after: float = 5 * POLL_INTERVAL):
        self.watchdog = watchdog
        self.router_name, self.watcher_name = router_name, watcher_name
        self.stale_after = stale_after
        self._router = None
        self._pipe = None
        self._lines = LineBuffer()
        self._last_line = 0.0
        self._due: list[Restart] = []

    def spawned(self, child, now: float) -> None:
        if child.name == self.router_name:
            if child.restarts > 0:
                self._router = child
        elif child.name == self.watcher_name:
            self._close_pipe()
            if child.proc is not None and child.proc.stdout is not None:
                self._pipe = child.proc.stdout
                os.set_blocking(self._pipe.fileno(), False)
                self._lines = LineBuffer()
            self._last_line = now
        else:
            self._due += self.watchdog.child_started(child.name, now)

    def exited(self, child, now: float) -> None:
        if child.name == self.router_name:
            self.watchdog.hub_unknown(now)
        elif child.name == self.watcher_name:
            self._read(now)
            self._close_pipe()
            self.watchdog.hub_unknown(now)
        else:
            self._due += self.watchdog.child_exited(child.name, now)

    def check(self, now: float) -> list[tuple[str, str]]:
        """Restarts due now, as ``(child name, reason)``."""
        due, self._due = self._due, []
        if self._router is not None and self._router.proc is not None and self._router.proc.poll() is None \
                and self._router.ready():
            self._router = None
            due += self.watchdog.router_restarted(now)
        due += self._read(now)
        if self._pipe is not None and now - self._last_line > self.stale_after:
            self.watchdog.hub_unknown(now)
        due += self.watchdog.tick(now)
        return [(r.child, r.reason) for r in due]

    def _read(self, now: float) -> list[Restart]:
        out: list[Restart] = []
        if self._pipe is None:
            return out
        while True:
            try:
                data = os.read(self._pipe.fileno(), 65536)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                self._close_pipe()
                break
            for line in self._lines.feed(data):
                self._last_line = now
                names = parse_watch_line(line)
                if names is None:
                    self.watchdog.hub_unknown(now)
                else:
                    out += self.watchdog.hub_listing(names, now)
        return out

    def _close_pipe(self) -> None:
        if self._pipe is not None:
            try:
                self._pipe.close()
            except OSError:
                pass
            self._pipe = None


def up_children(settings, children: Sequence, environ: Mapping[str, str] | None = None):
    """The children and monitors the nodes file adds to ``datasock up``, and lines to print.

    ``children`` are the stack's own (their names are reserved; the router among
    them is watched for restarts). Returns ``(children, monitors, lines)``.
    """
    from .supervisor import Child

    path, required = nodes_file_path(settings)
    if not required and not path.exists():
        return [], [], [f"nodes   none (put them in {path} or DATASOCK_NODES_FILE)"]
    reserved = RESERVED_CHILD_NAMES | {c.name for c in children}
    nodes = load_nodes_file(path, reserved)
    base = dict(os.environ if environ is None else environ)
    stack = stack_environment(settings)
    extra = [Child(n.name, list(n.command), cwd=str(n.cwd), env=node_environment(base, stack, n.env))
             for n in nodes]
    watchdog = Watchdog(nodes)
    monitors = []
    if watchdog.watched:
        import subprocess
        extra.insert(0, Child(WATCHER_NAME, [sys.executable, "-m", "datasock.extranodes", "watch"],
                              stdout=subprocess.PIPE))
        monitors.append(NodeMonitor(watchdog))
    names = ", ".join(n.name + (f" ({n.data_node})" if n.data_node else "") for n in nodes) or "none"
    return extra, monitors, [f"nodes   {names}  (from {path})"]


def watch_main(argv: Sequence[str] = ()) -> int:
    """The hub watcher: print the hub's node names as one JSON line every POLL_INTERVAL s."""
    from twisted.internet import defer, task

    from . import client, runtime, settings as settings_mod, wire

    settings = settings_mod.load()
    runtime.start_logging(settings.log_level, settings.log_format, "datasock up")
    comp = client.component(settings, client.credentials(settings, "consumer"))
    loops: list = []

    def emit(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    @defer.inlineCallbacks
    def poll(session):
        try:
            nodes = yield client.call(session, settings, wire.GET_DATA_NODE, timeout=2 * POLL_INTERVAL)
            emit(watch_line([n["name"] for n in nodes if isinstance(n, dict) and isinstance(n.get("name"), str)]))
        except Exception as exc:  # any failure only means "the hub could not be asked"
            emit(watch_line(error=f"{type(exc).__name__}: {exc}"))

    def stop_loops() -> None:
        while loops:
            loop = loops.pop()
            if loop.running:
                loop.stop()

    def on_join(session, details):
        stop_loops()
        loop = task.LoopingCall(poll, session)
        loops.append(loop)
        loop.start(POLL_INTERVAL, now=True).addErrback(lambda f: emit(watch_line(error=f.getErrorMessage())))

    def on_leave(session, details):
        stop_loops()
        emit(watch_line(error="left the router"))

    comp.on("join", on_join)
    comp.on("leave", on_leave)
    runtime.run_component(comp)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["watch"]:
        print("usage: python -m datasock.extranodes watch  (run by `datasock up`)", file=sys.stderr)
        sys.exit(2)
    sys.exit(watch_main())
