"""The held-port check of `datasock up` and `datasock router` (datasock.procutil)."""
from __future__ import annotations

import os
import socket

import pytest

from datasock import procutil, settings as settings_mod
from datasock.errors import DatasockError
from datasock.procutil import Listen


def listening_socket(host="127.0.0.1"):
    s = socket.socket()
    # as the servers do (twisted, mosquitto): their closed connections then do not hold the port
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, 0))
    s.listen()
    return s


def test_problems_name_port_setting_and_holder():
    listens = [Listen("127.0.0.1", 8080, "CROSSBAR_TLS_PORT", "the router's TLS WebSocket"),
               Listen("127.0.0.1", 8001, "CROSSBAR_OCS_PORT", "the router's OCS port"),
               Listen("0.0.0.0", 5000, "DATASOCK_HTTP_PORT", "the HTTP bridge")]
    held = {8080, 5000}
    problems = procutil.held_port_problems(listens, held=lambda host, port: port in held,
                                           holder=lambda port: "crossbar (pid 42)" if port == 8080 else None)
    assert problems == [
        "port 8080 on 127.0.0.1 (the router's TLS WebSocket) is already in use by crossbar (pid 42): "
        "stop that process or set CROSSBAR_TLS_PORT to a free port",
        "port 5000 on 0.0.0.0 (the HTTP bridge) is already in use: "
        "stop that process or set DATASOCK_HTTP_PORT to a free port"]
    assert procutil.held_port_problems(listens, held=lambda h, p: False, holder=lambda p: "x") == []


def test_a_listening_socket_is_held_and_named():
    with listening_socket() as s:
        port = s.getsockname()[1]
        assert procutil.port_held("127.0.0.1", port)
        # a listener on the loopback address also blocks the wildcard address
        assert procutil.port_held("0.0.0.0", port)
        holder = procutil.port_holder(port)
        assert holder is None or f"pid {os.getpid()}" in holder
    assert not procutil.port_held("127.0.0.1", port)


def test_wildcard_listener_blocks_loopback():
    with listening_socket("0.0.0.0") as s:
        assert procutil.port_held("127.0.0.1", s.getsockname()[1])


def test_a_closed_connection_of_a_stopped_server_does_not_hold_its_port():
    with listening_socket() as server:
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        conn, _ = server.accept()
        conn.close()     # the server side closes first: its end waits in TIME_WAIT
        client.close()
    # the server is gone; only its closed connection remains
    assert not procutil.port_held("127.0.0.1", port)


def test_addresses_not_held_are_left_to_the_server():
    # an address this computer does not have, and a name that does not resolve: not "held"
    assert not procutil.port_held("192.0.2.1", 8080)
    assert not procutil.port_held("no-such-host.invalid", 8080)


def test_check_ports_free_raises_one_message_for_all():
    with listening_socket() as a, listening_socket() as b:
        port = a.getsockname()[1]
        listens = [Listen("127.0.0.1", port, "CROSSBAR_TLS_PORT", "tls"),
                   Listen("127.0.0.1", b.getsockname()[1], "CROSSBAR_OCS_PORT", "ocs")]
        with pytest.raises(DatasockError) as held:
            procutil.check_ports_free(listens)
    message = str(held.value)
    assert "CROSSBAR_TLS_PORT" in message and "CROSSBAR_OCS_PORT" in message
    assert f"port {port} " in message


def test_holder_tolerates_psutil_refusing(monkeypatch):
    import psutil

    def refuse(kind):
        raise psutil.AccessDenied()

    monkeypatch.setattr(psutil, "net_connections", refuse)
    assert procutil.port_holder(8080) is None


def test_router_listens_follow_settings():
    s = settings_mod.load({"CROSSBAR_TLS_PORT": "18080", "CROSSBAR_OCS_PORT": "18001",
                           "CROSSBAR_OCS_LISTEN": "0.0.0.0"})
    assert [(l.host, l.port, l.setting) for l in procutil.router_listens(s)] == [
        ("127.0.0.1", 18080, "CROSSBAR_TLS_PORT"), ("0.0.0.0", 18001, "CROSSBAR_OCS_PORT")]


def test_stack_listens_add_http_and_mqtt_only_when_up_starts_the_broker(tmp_path, monkeypatch):
    from datasock import cli
    from datasock.mqtt import broker

    for var in ("DATASOCK_HTTP_PORT", "DATASOCK_HTTP_LISTEN", "DATASOCK_MQTT_URL", "DATASOCK_HTTP_AUTH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DATASOCK_HTTP_PORT", "15000")
    s = settings_mod.load({"DATASOCK_HOME": str(tmp_path / "home")})
    monkeypatch.setattr(broker, "mosquitto_binary", lambda: "/usr/sbin/mosquitto")
    monkeypatch.setattr(procutil, "port_open", lambda host, port, timeout=0.5: False)
    listens = {l.setting: l.port for l in cli.stack_listens(s)}
    assert listens == {"CROSSBAR_TLS_PORT": 8080, "CROSSBAR_OCS_PORT": 8001, "DATASOCK_HTTP_PORT": 15000,
                       "DATASOCK_MQTT_URL": 1883}
    # a broker already answers: up starts none, so its port is not ours to check
    monkeypatch.setattr(procutil, "port_open", lambda host, port, timeout=0.5: True)
    assert "DATASOCK_MQTT_URL" not in {l.setting for l in cli.stack_listens(s)}
    # no mosquitto installed: none started either
    monkeypatch.setattr(procutil, "port_open", lambda host, port, timeout=0.5: False)
    monkeypatch.setattr(broker, "mosquitto_binary", lambda: None)
    assert "DATASOCK_MQTT_URL" not in {l.setting for l in cli.stack_listens(s)}
