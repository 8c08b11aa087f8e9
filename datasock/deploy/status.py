"""``datasock status`` (alias ``doctor``): is the stack well, and if not, why.

Each check is one :class:`Check` (``ok``, ``FAIL`` or ``skip`` and one line of
reason). The checks are built by plain functions from what was observed
(:func:`port_check`, :func:`router_check`, :func:`hub_check`, :func:`node_checks`,
:func:`certificate_check`, :func:`database_check`, :func:`archive_lag_check`), and
aggregated by :func:`lines`, :func:`as_json` and :func:`exit_code`; all of that is
pure and unit-tested. :func:`gather` is the thin shell that observes: it opens the
ports, joins the router once as the consumer user, reads the certificate and the
archive index. Nothing is changed anywhere (no database or file is created).

A part the stack does not run (no archive: neither an index, an archive node nor a
``.g3`` file; no MQTT broker and none ``datasock up`` could start) is ``skip`` and does
not make the stack unwell; a part still starting (the archive's first scan) is ``ok``. The exit status is 0 when no check failed, 1
otherwise (docs/cli.rst, "Exit status").
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import socket
import ssl
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..errors import EXIT_FAILURE, EXIT_OK

OK, FAIL, SKIP = "ok", "FAIL", "skip"
#: a certificate closer than this to its expiry fails (the router renews it on start below 7 days)
CERT_MIN_DAYS = 7
#: archive lag allowed beyond SCAN_INTERVAL before the check fails (a pass takes time)
LAG_SLACK = 120.0
#: the most files the archive check lists on disk (a bigger archive is still compared on these)
MAX_FILES = 1_000_000


@dataclasses.dataclass(frozen=True)
class Check:
    """One line of ``datasock status``."""
    name: str
    status: str
    detail: str
    #: what was measured, for ``--json`` (ages in seconds, pids, fingerprints...)
    data: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == FAIL


@dataclasses.dataclass(frozen=True)
class Holder:
    """The process listening on a port, as far as this user can see it."""
    pid: int | None = None
    name: str | None = None
    #: Unix time the process started
    started: float | None = None

    def text(self, now: float | None = None) -> str:
        if self.pid is None:
            return "a process this user cannot see"
        who = f"{self.name or '?'} (pid {self.pid}"
        if self.started is not None and now is not None:
            who += f", up {age_text(now - self.started)}"
        return who + ")"


# -- pure: formatting and aggregation ----------------------------------------------------------
def age_text(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def lines(checks: Sequence[Check]) -> list[str]:
    """One line per check (``ok``/``FAIL``/``skip``, name, reason), then a verdict line."""
    width = max((len(c.name) for c in checks), default=0)
    out = [f"{c.status:<4}  {c.name:<{width}}  {c.detail}" for c in checks]
    failed = [c.name for c in checks if c.failed]
    out.append(f"FAIL: {len(failed)} of {len(checks)} checks failed ({', '.join(failed)})" if failed
               else f"ok: all {len(checks)} checks passed")
    return out


def apply_skips(checks: Sequence[Check], skips: Iterable[str]) -> list[Check]:
    """``--skip WORD``: a check with WORD among the words of its name (``mqtt`` skips ``port
    mqtt``, ``archive`` the archive lag, ``node`` every node) becomes ``skip``."""
    skips = set(skips)
    return [dataclasses.replace(c, status=SKIP, detail=f"skipped (--skip): {c.detail}")
            if skips & set(c.name.split()) else c for c in checks]


def exit_code(checks: Iterable[Check]) -> int:
    """0 when no check failed, 1 otherwise."""
    return EXIT_FAILURE if any(c.failed for c in checks) else EXIT_OK


def as_json(checks: Sequence[Check]) -> dict:
    return {"ok": not any(c.failed for c in checks),
            "checks": [{"name": c.name, "status": c.status, "detail": c.detail, **c.data} for c in checks]}


# -- pure: one check from what was observed ---------------------------------------------------
def port_check(name: str, host: str, port: int, setting: str, listening: bool,
               holder: Holder | None, answer: str | None, now: float) -> Check:
    """A port of the stack: ``answer`` is None when the service itself answered on it, else why
    not (what answered instead, or the error)."""
    data = {"host": host, "port": port, "setting": setting,
            "pid": holder.pid if holder else None, "process": holder.name if holder else None}
    where = f"{host}:{port}"
    if not listening:
        return Check(name, FAIL, f"nothing listens on {where} ({setting})", data)
    who = holder.text(now) if holder else "an unknown process"
    if answer is not None:
        return Check(name, FAIL, f"{where} is held by {who}, which does not answer as expected: {answer} "
                     f"(stop it or set {setting} to a free port)", data)
    return Check(name, OK, f"{where} held by {who}", data)


def mqtt_port_check(host: str, port: int, listening: bool, holder: Holder | None, answer: str | None,
                    now: float, url_set: bool, can_embed: bool) -> Check:
    """The MQTT broker's port. Nothing listening is ``skip`` when the stack runs no broker:
    DATASOCK_MQTT_URL left at its default and no Mosquitto ``datasock up`` could start
    (``can_embed``); a broker the settings name, or one ``up`` would start, fails."""
    if not listening and not url_set and not can_embed:
        return Check("port mqtt", SKIP, f"no MQTT broker at {host}:{port} and none to start (mosquitto is not "
                     "installed): this stack runs without MQTT (apt install mosquitto, or set "
                     "DATASOCK_MQTT_URL)", {"host": host, "port": port, "setting": "DATASOCK_MQTT_URL",
                                            "pid": None, "process": None})
    return port_check("port mqtt", host, port, "DATASOCK_MQTT_URL", listening, holder, answer, now)


def router_check(url: str, error: str | None, now: float, holder: Holder | None = None) -> Check:
    """Joining the router as the consumer user: ``error`` is why it failed (None: joined)."""
    if error is not None:
        return Check("router", FAIL, f"cannot join {url}: {error}", {"url": url})
    up = f", process up {age_text(now - holder.started)}" if holder and holder.started else ""
    return Check("router", OK, f"joined {url} as consumer{up}",
                 {"url": url, "age": now - holder.started if holder and holder.started else None})


def hub_check(listing: Any, error: str | None) -> Check:
    """The hub's answer to ``consumer.get_data_node`` (or why there was none)."""
    if error is not None:
        return Check("hub", FAIL, error)
    if not isinstance(listing, list):
        return Check("hub", FAIL, f"the hub's listing is not a list: {listing!r:.80}")
    return Check("hub", OK, f"answers, {len(listing)} node(s) registered", {"nodes": len(listing)})


def node_checks(listing: Any, now: float, expected: Iterable[str] = ()) -> list[Check]:
    """One check per node the hub lists (alive: the hub drops the nodes of departed sessions),
    with its session's age, and a failed one per ``expected`` node it does not list."""
    listing = listing if isinstance(listing, list) else []
    checks, seen = [], set()
    for entry in listing:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            continue
        name, since = entry["name"], entry.get("since")
        seen.add(name)
        if isinstance(since, (int, float)) and math.isfinite(since):
            detail, data = f"registered {age_text(now - since)} ago", {"age": now - since}
        else:
            detail, data = "registered (no time given)", {"age": None}
        checks.append(Check(f"node {name}", OK, detail, {"node": name, **data}))
    for name in expected:
        if name not in seen:
            checks.append(Check(f"node {name}", FAIL, "not registered with the hub (is it running?)",
                                {"node": name, "age": None}))
    return checks


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate as ``AB:CD:...``."""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def certificate_check(path: str, der: bytes | None, not_after: float | None, presented: bytes | None,
                      now: float, error: str | None = None) -> Check:
    """The router's certificate in the state directory (``der``, expiring at ``not_after``),
    and the one the router presented on its port (``presented``, None when it was not reached)."""
    if der is None or not_after is None:
        return Check("certificate", FAIL, error or f"no certificate at {path} (start the router once)",
                     {"path": path})
    fp = fingerprint(der)
    expires = time.strftime("%Y-%m-%d", time.gmtime(not_after))
    data = {"path": path, "sha256": fp, "expires": not_after}
    left = (not_after - now) / 86400
    if left < 0:
        return Check("certificate", FAIL, f"SHA-256 {fp} expired on {expires}: restart the router "
                     "to make a new one", data)
    if left < CERT_MIN_DAYS:
        return Check("certificate", FAIL, f"SHA-256 {fp} expires on {expires}, in {left:.1f} days: "
                     "restart the router to renew it", data)
    if presented is not None and presented != der:
        return Check("certificate", FAIL, f"the router presents {fingerprint(presented)}, not {path} "
                     f"({fp}): clients will refuse it (another router, or DATASOCK_HOME differs)", data)
    same = ", the router presents it" if presented is not None else ""
    return Check("certificate", OK, f"SHA-256 {fp}, expires {expires} ({int(left)} days){same}", data)


def database_check(where: str, error: str | None, sqlite: bool = False) -> Check:
    """The archive index answers: a read-only connection to MariaDB/MySQL (``SQL_HOST``), or
    the SQLite file opened read-only (the default stack's index)."""
    if error is not None:
        return Check("archive database", FAIL, f"archive index {where}: {error}", {"where": where})
    kind = "(SQLite, no SQL_HOST) opens" if sqlite else "answers"
    return Check("archive database", OK, f"archive index {where} {kind}", {"where": where})


def no_index_checks(where: str, directory: str, on_disk: Sequence[tuple[str, int, float]],
                    archive_age: float | None, now: float, scan_interval: float) -> list[Check]:
    """The database and lag checks when the index does not exist yet (no SQLite file, no
    MariaDB/MySQL database or table): the scanner makes it on its first pass.

    ``archive_age``: how long the hub has listed the archive node (None: not listed). A stack
    with neither an archive node nor a ``.g3`` file runs no archive (``skip``). Otherwise the
    first scan is running (``ok``) while the archive node and the newest file are younger
    than SCAN_INTERVAL + :data:`LAG_SLACK`; past that it fails (is ``datasock scan`` running?).
    """
    data = {"where": where, "files": len(on_disk), "indexed": 0, "pending": len(on_disk), "first_scan": True}
    if archive_age is None and not on_disk:
        text = f"no index at {where} and no .g3 file under {directory}: this stack runs no archive"
        return [Check("archive database", SKIP, text, data), Check("archive lag", SKIP, text, data)]
    since = [age for age in (archive_age, *(now - m for _, _, m in on_disk)) if age is not None]
    waited = min(since)
    if waited <= scan_interval + LAG_SLACK:
        text = f"first scan running: no index at {where} yet ({len(on_disk)} .g3 files under {directory})"
        return [Check("archive database", OK, text, data), Check("archive lag", OK, text, data)]
    node = f", the archive node registered {age_text(archive_age)} ago" if archive_age is not None else ""
    text = (f"no index at {where} although {len(on_disk)} .g3 files are under {directory}{node}: "
            f"is `datasock scan` running?")
    return [Check("archive database", FAIL, text, data), Check("archive lag", FAIL, text, data)]


def archive_lag_check(on_disk: Sequence[tuple[str, int, float]], indexed: Mapping[str, tuple[int, float]],
                      now: float, scan_interval: float, last_indexed: float | None = None) -> Check:
    """Files on disk ``[(path, size, mtime)]`` against the index's ``{path: (size, mtime)}``.

    The lag is how long the oldest change not yet in the index has waited (0 when the index
    has every file as it is on disk); over SCAN_INTERVAL + :data:`LAG_SLACK` it fails, unless
    the scanner is working through them: it indexed a file (``last_indexed``, Unix time) less
    than that long ago (a first scan of a large archive, or many files copied in at once).
    """
    pending = [(p, s, m) for p, s, m in on_disk if indexed.get(p) != (s, m)]
    newest_disk = max((m for _, _, m in on_disk), default=None)
    newest_indexed = max((m for _, m in indexed.values()), default=None)
    lag = max(0.0, now - min(m for _, _, m in pending)) if pending else 0.0
    data = {"files": len(on_disk), "indexed": len(indexed), "pending": len(pending), "lag": lag,
            "newest_file": newest_disk, "newest_indexed": newest_indexed, "last_indexed": last_indexed}
    if not on_disk:
        return Check("archive lag", OK, "no .g3 file on disk yet", data)
    if not pending:
        return Check("archive lag", OK, f"all {len(on_disk)} files indexed, newest changed "
                     f"{age_text(now - newest_disk)} ago", data)
    detail = (f"{len(pending)} of {len(on_disk)} files not indexed as they are on disk, "
              f"the oldest change waiting {age_text(lag)}")
    limit = scan_interval + LAG_SLACK
    if lag <= limit:
        return Check("archive lag", OK, detail + " (the next pass will index them)", data)
    if last_indexed is not None and now - last_indexed <= limit:
        first = "first scan running: " if len(pending) > len(on_disk) - len(pending) else ""
        return Check("archive lag", OK, f"{first}{detail}; the scanner is working through them "
                     f"(it indexed a file {age_text(now - last_indexed)} ago)", data)
    return Check("archive lag", FAIL, detail + " (is `datasock scan` running?)", data)


# -- the shell: observing ------------------------------------------------------------------
def listeners() -> dict[int, Holder]:
    """TCP port -> the process listening on it, where psutil can see it ({} otherwise)."""
    try:
        import psutil
    except ImportError:
        return {}
    found: dict[int, Holder] = {}
    try:
        conns = psutil.net_connections(kind="tcp")
    except Exception:   # AccessDenied (macOS), no /proc
        return {}
    for conn in conns:
        if conn.status != psutil.CONN_LISTEN or not conn.laddr or conn.pid is None:
            continue
        try:
            proc = psutil.Process(conn.pid)
            found[conn.laddr.port] = Holder(conn.pid, proc.name(), proc.create_time())
        except (psutil.Error, OSError):
            found[conn.laddr.port] = Holder(conn.pid)
    return found


def _connect(host: str, port: int, timeout: float) -> socket.socket:
    return socket.create_connection((host, port), timeout=timeout)


def probe_tls(host: str, port: int, timeout: float) -> tuple[bytes | None, str | None]:
    """The certificate a TLS server presents (DER), or why there was none."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE   # compared to the state directory's below, not trusted
    try:
        with _connect(host, port, timeout) as raw, context.wrap_socket(raw, server_hostname=host) as tls:
            return tls.getpeercert(binary_form=True), None
    except (OSError, ssl.SSLError) as exc:
        return None, f"no TLS handshake ({exc})"


def probe_http(host: str, port: int, path: str, timeout: float, tls: bool = False) -> tuple[int | None, bytes, str | None]:
    """``GET path``: (status, up to 64 KiB of the body, error)."""
    try:
        with _connect(host, port, timeout) as raw:
            sock = raw
            if tls:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                sock = context.wrap_socket(raw, server_hostname=host)
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: application/json\r\n\r\n".encode())
            data = b""
            while len(data) < 65536:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except (OSError, ssl.SSLError) as exc:
        return None, b"", str(exc)
    head, _, body = data.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return None, b"", f"answered {data[:16]!r}, not HTTP"
    return int(parts[1]), body, None


def bridge_answer(status: int | None, body: bytes, error: str | None) -> str | None:
    """None when ``GET /api/nodes`` was answered by the HTTP bridge (a JSON list, or 401 when it
    wants credentials), else what answered instead."""
    if error is not None:
        return error
    if status == 401:
        return None
    if status == 200 and body.lstrip().startswith(b"["):
        return None
    return f"GET /api/nodes answered {status} {body[:40]!r}, not the bridge's node list"


def probe_mqtt(host: str, port: int, timeout: float) -> str | None:
    """None when an MQTT CONNECT gets a CONNACK (accepted or refused), else why not."""
    from ..supervisor import _MQTT_CONNECT

    try:
        with _connect(host, port, timeout) as sock:
            sock.sendall(_MQTT_CONNECT)
            head = sock.recv(4)
            if head.startswith(b"\x20"):
                sock.sendall(b"\xe0\x00")
                return None
            return f"CONNECT answered {head!r}, not CONNACK"
    except OSError as exc:
        return f"no MQTT answer ({exc})"


def probe_mysql(config, timeout: float) -> tuple[Any, str | None]:
    """A read-only connection to the MariaDB/MySQL archive index (the database is not created)."""
    try:
        import mysql.connector
    except ImportError:
        return None, "mysql-connector-python is not installed (datasock[archive])"
    hostname, _, port = config.sql_host.partition(":")
    seconds = max(1, math.ceil(timeout))
    try:
        conn = mysql.connector.connect(host=hostname, port=int(port or 3306), user=config.sql_user,
                                       password=config.sql_passwd or "", database=config.sql_db,
                                       connection_timeout=seconds, read_timeout=seconds)
    except (mysql.connector.Error, OSError, ValueError) as exc:
        if getattr(exc, "errno", None) == 1049:      # unknown database: the scanner creates it
            return None, None
        return None, str(exc).strip() or type(exc).__name__
    return conn, None


def read_index(conn) -> tuple[dict[str, tuple[int, float]], float | None]:
    """``{path: (size, mtime)}`` of the files the archive index holds, and when the scanner
    last indexed one (Unix time; None when it holds none)."""
    cursor = conn.cursor()
    try:
        cursor.execute("SELECT path, size, mtime, scanned_at FROM ds_files")
        rows = cursor.fetchall()
        return ({row[0]: (int(row[1]), float(row[2])) for row in rows},
                max((float(row[3]) for row in rows), default=None))
    finally:
        cursor.close()


def _no_table(exc: BaseException) -> bool:
    """The index's database exists but the scanner has not made its tables yet."""
    text = str(exc).lower()
    return "no such table" in text or getattr(exc, "errno", None) == 1146   # SQLite / MySQL


def files_on_disk(directory) -> list[tuple[str, int, float]]:
    """``[(path, size, mtime)]`` of the ``.g3`` files under ``directory`` (at most MAX_FILES)."""
    found = []
    for root, dirs, files in os.walk(directory):
        for name in files:
            if name.endswith(".g3"):
                path = os.path.join(root, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                found.append((path, st.st_size, st.st_mtime))
                if len(found) >= MAX_FILES:
                    return found
    return found


def wamp_probe(settings, timeout: float) -> tuple[str | None, Any, str | None]:
    """Join the router once as the consumer user and ask the hub for its nodes.

    ``(router error, listing, hub error)``; runs the reactor (once per process).
    """
    from autobahn.wamp.exception import ApplicationError
    from twisted.internet import defer, reactor

    from .. import client, wire
    from ..errors import DatasockError

    out: dict[str, Any] = {"router": None, "listing": None, "hub": None}

    @defer.inlineCallbacks
    def work():
        try:
            session = yield client.connect_once(settings, client.credentials(settings, "consumer"), timeout)
        except DatasockError as exc:
            out["router"] = str(exc)
            return
        except Exception as exc:   # a TLS or protocol failure autobahn reports as such
            out["router"] = f"{type(exc).__name__}: {exc}"
            return
        try:
            out["listing"] = yield client.call(session, settings, wire.GET_DATA_NODE, timeout=timeout)
        except ApplicationError as exc:
            out["hub"] = ("the hub is not running: nothing registered "
                          f"{settings.uri(wire.GET_DATA_NODE)}" if exc.error == "wamp.error.no_such_procedure"
                          else f"the hub answered an error: {exc.error_message()}")
        except DatasockError as exc:
            out["hub"] = f"the hub does not answer: {exc}"
        finally:
            try:
                yield session.leave()
            except Exception:
                pass

    def go():
        d = work()
        d.addErrback(lambda f: out.__setitem__("router", f.getErrorMessage()))
        d.addBoth(lambda _: reactor.stop())
    reactor.callWhenRunning(go)
    reactor.run()
    if out["router"] is not None:
        out["hub"] = "not asked: the router cannot be joined"
    return out["router"], out["listing"], out["hub"]


def read_certificate(home) -> tuple[str, bytes | None, float | None, str | None]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from .. import tls

    path = tls.cert_path(home)
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        return str(path), None, None, None
    except (OSError, ValueError) as exc:
        return str(path), None, None, f"cannot read {path}: {exc}"
    return (str(path), cert.public_bytes(serialization.Encoding.DER),
            cert.not_valid_after_utc.timestamp(), None)


def gather(settings, expected_nodes: Sequence[str] = (), timeout: float = 5.0,
           clock: Callable[[], float] = time.time,
           environ: Mapping[str, str] | None = None) -> list[Check]:
    """Observe the stack the settings describe; every check, in a fixed order."""
    from ..http_bridge import config as http_config
    from ..mqtt import config as mqtt_config
    from ..mqtt.broker import embedded_broker_plan, mosquitto_binary
    from ..supervisor import probe_host

    now = clock()
    held = listeners()
    checks: list[Check] = []

    # ports: the router's two, the HTTP bridge's, the MQTT broker's
    router_host = probe_host(settings.crossbar_listen)
    presented, tls_error = probe_tls(router_host, settings.tls_port, timeout)
    router_listening = presented is not None or _listening(router_host, settings.tls_port, timeout)
    checks.append(port_check("port router", router_host, settings.tls_port, "CROSSBAR_TLS_PORT",
                             router_listening, held.get(settings.tls_port), tls_error, now))
    ocs_host = probe_host(settings.ocs_listen)
    status, _, error = probe_http(ocs_host, settings.ocs_port, "/", timeout)
    checks.append(port_check("port ocs", ocs_host, settings.ocs_port, "CROSSBAR_OCS_PORT",
                             status is not None or _listening(ocs_host, settings.ocs_port, timeout),
                             held.get(settings.ocs_port), error, now))
    http = http_config.load(settings.home, environ)
    http_host = probe_host(http.listen)
    answer = bridge_answer(*probe_http(http_host, http.port, "/api/nodes", timeout, tls=bool(http.tls_cert)))
    checks.append(port_check("port http", http_host, http.port, "DATASOCK_HTTP_PORT",
                             answer is None or _listening(http_host, http.port, timeout),
                             held.get(http.port), answer, now))
    mqtt = mqtt_config.load(environ)
    broker = mqtt.url
    answer = probe_mqtt(broker.host, broker.port, timeout)
    listening = answer is None or _listening(broker.host, broker.port, timeout)
    can_embed = embedded_broker_plan(False, mqtt, mosquitto_binary())[0]
    checks.append(mqtt_port_check(broker.host, broker.port, listening, held.get(broker.port), answer, now,
                                  "DATASOCK_MQTT_URL" in (os.environ if environ is None else environ),
                                  can_embed))

    # router, hub, nodes
    router_error, listing, hub_error = wamp_probe(settings, timeout)
    checks.append(router_check(settings.router_url, router_error, now, held.get(settings.tls_port)))
    checks.append(hub_check(listing, hub_error))
    nodes = node_checks(listing, now, expected_nodes)
    checks += nodes

    path, der, not_after, cert_error = read_certificate(settings.home)
    checks.append(certificate_check(path, der, not_after, presented, now, cert_error))

    # the archive's database and lag
    from ..archive import index_location, load_config

    archive = load_config(environ)
    where = index_location(archive)
    archive_age = next((c.data["age"] for c in nodes if c.data.get("node") == archive.node_name
                        and c.status == OK), None)
    if archive.sql_host:
        conn, error = probe_mysql(archive, timeout)
    else:
        conn, error = _open_sqlite(archive.sqlite_path, timeout)
    if error is not None:
        checks.append(database_check(where, error))
        checks.append(Check("archive lag", FAIL, f"not measured: the index {where} cannot be read"))
        return checks
    on_disk = files_on_disk(archive.data_directory)
    if conn is None:    # no index yet
        return checks + no_index_checks(where, str(archive.data_directory), on_disk, archive_age, clock(),
                                        archive.scan_interval)
    try:
        indexed, last_indexed = read_index(conn)
    except Exception as exc:   # a database error, or an index the scanner has not made yet
        if _no_table(exc):
            return checks + no_index_checks(where, str(archive.data_directory), on_disk, archive_age,
                                            clock(), archive.scan_interval)
        checks.append(database_check(where, f"cannot read the index: {exc}"))
        checks.append(Check("archive lag", FAIL, f"not measured: the index {where} cannot be read"))
        return checks
    finally:
        conn.close()
    checks.append(database_check(where, None, sqlite=not archive.sql_host))
    checks.append(archive_lag_check(on_disk, indexed, clock(), archive.scan_interval, last_indexed))
    return checks


def _listening(host: str, port: int, timeout: float) -> bool:
    try:
        with _connect(host, port, timeout):
            return True
    except OSError:
        return False


def _open_sqlite(path, timeout: float):
    import sqlite3

    if not path.exists():
        return None, None      # no index yet: the scanner makes it
    try:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout), None
    except sqlite3.Error as exc:
        return None, str(exc)
