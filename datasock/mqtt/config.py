"""The MQTT adapter's settings (pure: parsing only, no I/O)."""
from __future__ import annotations

import dataclasses
from typing import Mapping
from urllib.parse import unquote, urlsplit

from ..errors import InvalidArgument
from ..settings import Setting, parse_settings
from .. import wire

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclasses.dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        """The address without credentials, for logs."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_broker_url(text: str) -> BrokerAddress:
    """``mqtt://[user:password@]host[:port]`` or ``mqtts://...`` (TLS)."""
    parts = urlsplit(text)
    if parts.scheme not in DEFAULT_PORTS:
        raise ValueError(f"scheme must be mqtt:// or mqtts://, got {text!r}")
    if not parts.hostname:
        raise ValueError(f"no host in {text!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"an MQTT URL has no path or query: {text!r}")
    port = parts.port or DEFAULT_PORTS[parts.scheme]
    return BrokerAddress(parts.hostname, port, parts.scheme == "mqtts",
                         unquote(parts.username) if parts.username else None,
                         unquote(parts.password) if parts.password else None)


def _qos(text: str) -> int:
    if text not in ("0", "1", "2"):
        raise ValueError("QoS must be 0, 1 or 2")
    return int(text)


def _protocol(text: str) -> int:
    versions = {"3.1.1": 4, "311": 4, "5": 5}
    if text not in versions:
        raise ValueError("MQTT protocol must be 3.1.1 or 5")
    return versions[text]


def _words(text: str) -> tuple[str, ...]:
    return tuple(w for w in text.replace(",", " ").split() if w)


def _topic_prefix(text: str) -> str:
    prefix = text.strip("/")
    if not prefix or any(c in prefix for c in "+#"):
        raise ValueError("the topic prefix must be non-empty and hold no wildcard")
    return prefix


def _patterns(text: str) -> tuple[str, ...]:
    from .topics import check_filter
    patterns = _words(text)
    if not patterns:
        raise ValueError("at least one topic pattern is needed")
    for p in patterns:
        check_filter(p)
    return patterns


def _capacity(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be >= 1")
    return value


def _on_off(text: str) -> bool:
    words = {"on": True, "true": True, "1": True, "yes": True,
             "off": False, "false": False, "0": False, "no": False}
    if text.lower() not in words:
        raise ValueError("must be on or off")
    return words[text.lower()]


def _node_name(text: str) -> str:
    try:
        return wire.check_node_name(text)
    except InvalidArgument as exc:
        raise ValueError(str(exc)) from None


SETTINGS: tuple[Setting, ...] = (
    Setting("DATASOCK_MQTT_URL", "url", "mqtt://127.0.0.1:1883",
            "MQTT broker of the adapter: mqtt://host:port, or mqtts:// for TLS. When nothing "
            "answers at a loopback address, `datasock up` starts an embedded Mosquitto there.",
            parse_broker_url),
    Setting("DATASOCK_MQTT_USERNAME", "username", None,
            "MQTT user name (overrides one given in DATASOCK_MQTT_URL)."),
    Setting("DATASOCK_MQTT_PASSWORD", "password", None, "MQTT password."),
    Setting("DATASOCK_MQTT_CA", "ca_file", None,
            "CA bundle that verifies an mqtts:// broker (default: the system's)."),
    Setting("DATASOCK_MQTT_PROTOCOL", "protocol", "5",
            "MQTT protocol version the adapter speaks: 5 or 3.1.1.", _protocol),
    Setting("DATASOCK_MQTT_PREFIX", "prefix", "datasock",
            "First topic level of everything the adapter publishes and of its RPC topics.",
            _topic_prefix),
    Setting("DATASOCK_MQTT_QOS", "qos", "1",
            "QoS of the live samples, $meta and $state the adapter publishes (0, 1 or 2).", _qos),
    Setting("DATASOCK_MQTT_INPUT", "input", "datasock/in/#",
            "Topic filters (space or comma separated) whose messages become fields of the "
            "MQTT-fed node, e.g. 'datasock/in/# /sensor/#'.", _patterns),
    Setting("DATASOCK_MQTT_NODE", "node", "mqtt",
            "Name of the data node serving the fields fed over MQTT.", _node_name),
    Setting("DATASOCK_MQTT_BUFFER", "capacity", "86400",
            "Samples kept per MQTT-fed field (oldest dropped first).", _capacity),
    Setting("DATASOCK_MQTT_RECORD", "record", "off",
            "on: also record the MQTT-fed values in $DATASOCK_HOME/mqtt/<node>.jsonl, so the "
            "node's buffers survive a restart.", _on_off),
    Setting("DATASOCK_MQTT_RPC_ALLOW", "rpc_allow",
            "consumer.get_data_node consumer.*.get_fields consumer.*.get_data",
            "Procedures (suffixes of DATASOCK_BASE_URI, shell-style wildcards) an MQTT client "
            "may call through datasock/rpc/request.", _words),
    Setting("DATASOCK_MQTT_CLIENT_ID", "client_id", "datasock-mqtt",
            "MQTT client id of the adapter (two adapters on one broker need different ids)."),
)


@dataclasses.dataclass(frozen=True)
class MqttSettings:
    url: BrokerAddress
    username: str | None
    password: str | None
    ca_file: str | None
    protocol: int
    prefix: str
    qos: int
    input: tuple[str, ...]
    node: str
    capacity: int
    record: bool
    rpc_allow: tuple[str, ...]
    client_id: str

    @property
    def broker(self) -> BrokerAddress:
        """The broker address with the credentials that apply."""
        return dataclasses.replace(self.url, username=self.username or self.url.username,
                                   password=self.password or self.url.password)


def load(environ: Mapping[str, str] | None = None) -> MqttSettings:
    return MqttSettings(**parse_settings(SETTINGS, environ))
