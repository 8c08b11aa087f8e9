"""Helpers for tests and benchmarks: a private Mosquitto and a collecting MQTT client."""
from __future__ import annotations

import queue
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from ..procutil import ChildProcess, free_port, wait_for_port
from ..mqtt.broker import broker_config, mosquitto_binary


class Mosquitto:
    """A Mosquitto of our own on a free loopback port, with datasock's configuration.

    Stopped and restarted by PID (never by name: the system broker must not be touched).
    """

    def __init__(self, directory: Path, port: int | None = None, persistence: bool = False,
                 extra: str = ""):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.conf = self.directory / "mosquitto.conf"
        data = self.directory / "data" if persistence else None
        if data is not None:
            data.mkdir(exist_ok=True)
        # ``extra`` lines follow the listener line, so they may configure it (TLS, passwords)
        self.conf.write_text(broker_config("127.0.0.1", self.port, data) + extra)
        self.log = self.directory / "mosquitto.log"
        self.proc: ChildProcess | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10) -> "Mosquitto":
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto is not installed (apt install mosquitto)")
        with self.log.open("ab") as log:
            self.proc = ChildProcess.start([binary, "-c", str(self.conf)], stdout=log,
                                           stderr=subprocess.STDOUT)
        if not wait_for_port("127.0.0.1", self.port, timeout, alive=lambda: self.proc.poll() is None):
            raise RuntimeError(f"mosquitto did not start:\n{self.log.read_text(errors='replace')}")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(10)


class Collector:
    """An MQTT client that subscribes and keeps every message it gets, for assertions."""

    def __init__(self, port: int, host: str = "127.0.0.1", protocol: int = 5,
                 client_id: str = "", ca_file: str | None = None,
                 username: str | None = None, password: str | None = None):
        v5 = protocol == 5
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311)
        self.client.max_inflight_messages_set(1000)
        if ca_file:
            self.client.tls_set(ca_certs=ca_file)
        if username:
            self.client.username_pw_set(username, password)
        self.messages: "queue.Queue[paho.MQTTMessage]" = queue.Queue()
        self.connected = threading.Event()
        self.refused = None
        answered = threading.Event()

        def on_connect(client, userdata, flags, reason_code, properties):
            if reason_code.is_failure:
                self.refused = str(reason_code)
            else:
                self.connected.set()
            answered.set()
        self.client.on_connect = on_connect
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        answered.wait(10)
        if not self.connected.is_set():
            self.close()
            raise RuntimeError(f"cannot connect to the MQTT broker at {host}:{port}: {self.refused}")

    def subscribe(self, topic: str, qos: int = 1) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *a: done.set()
        self.client.subscribe(topic, qos)
        if not done.wait(10):
            raise RuntimeError(f"no SUBACK for {topic}")

    def publish(self, topic: str, payload, qos: int = 1, retain: bool = False, properties=None):
        return self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)

    def wait_for(self, predicate, timeout: float = 15.0):
        """The first message (taken from the queue) for which ``predicate(message)`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out waiting for an MQTT message")
            try:
                message = self.messages.get(timeout=left)
            except queue.Empty:
                raise AssertionError("timed out waiting for an MQTT message") from None
            if predicate(message):
                return message

    def drain(self) -> list:
        out = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
