"""A MariaDB that stops answering (frozen, not closed) is a logged, retried error, never a hang.

The freeze is a TCP proxy between datasock and the shared MariaDB at 127.0.0.1:3306:
it accepts and forwards, and when frozen stops forwarding in both directions while
keeping every connection open (what a stopped or stuck server looks like). The
server itself is never touched beyond a database of the test's own.
"""
from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest
from autobahn.wamp.exception import ApplicationError

from datasock import secretstore
from datasock.archive import load_config
from datasock.archive.db import Index, IndexUnavailable
from datasock.archive.node import ERROR_UNAVAILABLE, ArchiveNode
from datasock.archive.scanner import scan_once

from . import wamp
from .conftest import wait_until
from .test_archive_scan import FEED, T0, field, write_hk_file

pytestmark = pytest.mark.integration

TIMEOUT = 2


class FreezingProxy:
    """Forwards 127.0.0.1:<port> to ``upstream``; ``frozen`` stops all forwarding, sockets stay open."""

    def __init__(self, upstream=("127.0.0.1", 3306)):
        self.upstream = upstream
        self.frozen = threading.Event()
        self.closing = threading.Event()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = [self.listener]
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not self.closing.is_set():
            ready, _, _ = select.select([self.listener], [], [], 0.2)
            if not ready:
                continue
            try:
                client, _ = self.listener.accept()
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                continue
            self.sockets += [client, server]
            pump = threading.Thread(target=self._pump, args=(client, server), daemon=True)
            self.threads.append(pump)
            pump.start()

    def _pump(self, a, b):
        peer = {a: b, b: a}
        while not self.closing.is_set():
            if self.frozen.is_set():
                time.sleep(0.05)
                continue
            ready, _, _ = select.select([a, b], [], [], 0.1)
            for s in ready:
                try:
                    data = s.recv(65536)
                    if not data:
                        return
                    peer[s].sendall(data)
                except OSError:
                    return

    def close(self):
        self.closing.set()
        for s in self.sockets:
            try:
                s.close()
            except OSError:
                pass
        for t in self.threads:
            t.join(5)


@pytest.fixture
def db(tmp_path):
    import mysql.connector

    try:
        admin = mysql.connector.connect(host="127.0.0.1", port=3306, user="root", password="",
                                        connection_timeout=5)
    except mysql.connector.Error as exc:
        pytest.skip(f"!!! MariaDB at 127.0.0.1:3306 (root, no password) is not reachable: {exc} !!!")
    proxy = FreezingProxy()
    name = f"dstest_{uuid.uuid4().hex[:12]}"
    env = {"DATASOCK_HOME": str(tmp_path / "home"), "SQL_HOST": f"127.0.0.1:{proxy.port}", "SQL_USER": "root",
           "SQL_DB": name, "DATA_DIRECTORY": str(tmp_path / "data"),
           "DATASOCK_ARCHIVE_DB_TIMEOUT": str(TIMEOUT)}
    write_hk_file(f"{tmp_path}/data/{int(T0)}.g3", T0, nfields=1)
    direct = Index.from_config(load_config({**env, "SQL_HOST": "127.0.0.1"}))
    yield {"env": env, "proxy": proxy, "direct": direct}
    proxy.close()
    direct.close()
    admin.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


def bounded(fn, limit=60):
    """``fn()``'s result or exception, failing the test if it has not returned within ``limit`` s."""
    out = {}

    def run():
        try:
            out["value"] = fn()
        except Exception as exc:
            out["error"] = exc
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit)
    assert not worker.is_alive(), f"still waiting after {limit} s: a hang"
    return out


def test_frozen_database_is_an_error_not_a_hang(db):
    index = Index.from_config(load_config(db["env"]))
    try:
        scan_once(index, db["env"]["DATA_DIRECTORY"])
        node = ArchiveNode(index)
        assert len(node.get_data([field(1)], T0, T0 + 10)[f"{FEED}:temps"].t) == 10
        db["proxy"].frozen.set()
        got = bounded(lambda: node.get_data([field(1)], T0, T0 + 10))
        # the node answers the index's error as a WAMP error with its text (no traceback)
        assert isinstance(got.get("error"), ApplicationError), got
        assert got["error"].error == ERROR_UNAVAILABLE
        assert f"no answer within {TIMEOUT} s" in got["error"].error_message()
        # while it rests, calls fail at once rather than queue behind the frozen server
        got = bounded(lambda: scan_once(index, db["env"]["DATA_DIRECTORY"]))
        assert isinstance(got.get("error"), IndexUnavailable) and "trying again in" in str(got["error"])
        db["proxy"].frozen.clear()

        def answers():
            try:
                return len(node.get_data([field(1)], T0, T0 + 10)[f"{FEED}:temps"].t) == 10
            except ApplicationError:
                return False
        wait_until(answers, 30, what="the index answering again")
    finally:
        index.close()


def test_scanner_logs_each_attempt_and_carries_on(db, tmp_path):
    env = {**os.environ, **db["env"], "SCAN_INTERVAL": "0.5", "DATASOCK_LOG_LEVEL": "info"}
    code = "import sys; from datasock.archive.scanner import main; sys.exit(main(sys.argv[1:]))"
    log_path = tmp_path / "scan.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=log, stderr=subprocess.STDOUT)
    direct = db["direct"]

    def indexed():
        try:
            return len(direct.known_files())
        except IndexUnavailable:
            return 0
    try:
        wait_until(lambda: indexed() == 1, 60, what="first file indexed")
        db["proxy"].frozen.set()
        write_hk_file(f"{db['env']['DATA_DIRECTORY']}/{int(T0 + 3600)}.g3", T0 + 3600, nfields=1)
        wait_until(lambda: log_path.read_text().count("trying again in") >= 2 or proc.poll() is not None, 60,
                   what="the scanner logging failed attempts")
        assert proc.poll() is None, log_path.read_text()
        assert indexed() == 1
        db["proxy"].frozen.clear()
        wait_until(lambda: indexed() == 2 or proc.poll() is not None, 120, what="the scanner indexing again")
        wait_until(lambda: "answers again" in log_path.read_text(), 30, what="the recovery line")
    finally:
        proc.terminate()
        proc.wait(30)
    output = log_path.read_text()
    failures = [line for line in output.splitlines() if "trying again in" in line]
    assert f"no answer within {TIMEOUT} s" in output, output
    assert all("attempt" in line and "archive index mysql://root@127.0.0.1:" in line for line in failures)
    assert "Traceback" not in output


NODE = "archfrozen"
NODE_CODE = "import sys; from datasock.archive.node import main; sys.exit(main())"


def test_get_data_over_wamp_answers_an_error_while_the_database_is_frozen(shared_stack, db):
    env = {**db["env"], "DATASOCK_ARCHIVE_NODE": NODE, "DATASOCK_HOME": str(shared_stack.settings.home)}
    index = Index.from_config(load_config(env))
    scan_once(index, env["DATA_DIRECTORY"])
    index.close()
    node = shared_stack.spawn("archive-frozen", [sys.executable, "-c", NODE_CODE], env)
    session = wamp.connect(shared_stack.settings, "consumer",
                           secretstore.load_secrets(shared_stack.settings.home)["consumer"])
    try:
        wait_until(lambda: NODE in shared_stack.node_names() or not node.alive(), 60, what="archive node")
        assert node.alive(), node.output()
        uri = shared_stack.settings.uri(f"consumer.{NODE}.get_data")
        assert len(wamp.call(session, uri, [field(1)], T0, T0 + 10)["data"][field(1)]) == 10
        db["proxy"].frozen.set()
        got = bounded(lambda: wamp.call(session, uri, [field(1)], T0, T0 + 10), limit=25)
        assert isinstance(got.get("error"), ApplicationError), got
        assert "archive index" in str(got["error"])
        db["proxy"].frozen.clear()
        assert node.alive()
        assert "Traceback" not in node.output()     # one line, not a traceback
    finally:
        wamp.leave(session)
        node.stop()
