"""The MQTT adapter's settings (pure: parsing only, no I/O)."""
from __future__ import annotations

import dataclasses
from typing import Mapping
from urllib.parse import quote, unquote, urlsplit

from ..settings import Group, Setting, bounded, parse_flag, parse_node_name, parse_words
from .budget import RateSettings
from .poll import PollSettings

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

    def masked(self) -> str:
        """The address as ``datasock config`` shows it: a password in it as ``***``."""
        if not self.username and not self.password:
            return self.url
        user = quote(self.username or "", safe="")
        password = ":***" if self.password else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{password}@{self.host}:{self.port}"


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


def _show_protocol(version: int) -> str:
    return {4: "3.1.1", 5: "5"}[version]


_words = parse_words


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


def _on_off(value: bool) -> str:
    return "on" if value else "off"


def _rate(text: str) -> float:
    value = float(text)
    if not (0 <= value <= 1e6):
        raise ValueError("must be >= 0 (no limit) and <= 1000000")
    return value


def _node_names(text: str) -> tuple[str, ...]:
    return tuple(parse_node_name(name) for name in _words(text))


SETTINGS = Group("mqtt", "The MQTT adapter (datasock mqtt, datasock node mqtt)", (
    Setting("DATASOCK_MQTT_URL", "url", "mqtt://127.0.0.1:1883",
            "MQTT broker of the adapter: mqtt://host:port, or mqtts:// for TLS. When nothing "
            "answers at a loopback address, `datasock up` starts an embedded Mosquitto there.",
            parse_broker_url, show=BrokerAddress.masked),
    Setting("DATASOCK_MQTT_USERNAME", "username", None,
            "MQTT user name (overrides one given in DATASOCK_MQTT_URL)."),
    Setting("DATASOCK_MQTT_PASSWORD", "password", None, "MQTT password."),
    Setting("DATASOCK_MQTT_CA", "ca_file", None,
            "CA bundle that verifies an mqtts:// broker (default: the system's)."),
    Setting("DATASOCK_MQTT_PROTOCOL", "protocol", "5",
            "MQTT protocol version the adapter speaks: 5 or 3.1.1.", _protocol, show=_show_protocol),
    Setting("DATASOCK_MQTT_PREFIX", "prefix", "datasock",
            "First topic level of everything the adapter publishes and of its RPC topics.",
            _topic_prefix),
    Setting("DATASOCK_MQTT_QOS", "qos", "1",
            "QoS of the live samples, $meta and $state the adapter publishes (0, 1 or 2).", _qos),
    Setting("DATASOCK_MQTT_INPUT", "input", "datasock/in/#",
            "Topic filters (space or comma separated) whose messages become fields of the "
            "MQTT-fed node, e.g. 'datasock/in/# /sensor/#'.", _patterns),
    Setting("DATASOCK_MQTT_NODE", "node", "mqtt",
            "Name of the data node serving the fields fed over MQTT.", parse_node_name),
    Setting("DATASOCK_MQTT_BUFFER", "capacity", "86400",
            "Samples kept per MQTT-fed field (oldest dropped first).", _capacity),
    Setting("DATASOCK_MQTT_RECORD", "record", "on",
            "on: also record the MQTT-fed values in $DATASOCK_HOME/mqtt/<node>.jsonl "
            "(<node>.node.jsonl for datasock node mqtt), written before each message is "
            "acknowledged, so the node's buffers survive a restart; "
            "off: keep them in memory only (a restart loses them).", parse_flag, show=_on_off),
    Setting("DATASOCK_MQTT_MAX_FIELDS", "max_fields", "10000",
            "Fields the MQTT-fed node may hold; a message for a new field beyond that is refused "
            "(1 to 1000000). Memory grows with the samples held, about 16 bytes each, up to "
            "DATASOCK_MQTT_BUFFER per field.", bounded(0, 1_000_000, int)),
    Setting("DATASOCK_MQTT_MAX_PAYLOAD", "max_payload", "65536",
            "Bytes an input message may have; a bigger one is refused (up to 16777216).",
            bounded(0, 1 << 24, int)),
    Setting("DATASOCK_MQTT_MAX_VALUES", "max_values", "1000",
            "Values (JSON keys) one input message may hold; a message with more is refused "
            "(up to 100000).", bounded(0, 100_000, int)),
    Setting("DATASOCK_MQTT_MAX_AHEAD", "max_ahead", "60",
            "Seconds: an input message whose 't' is further ahead of the adapter's clock is "
            "refused (that message only; up to 86400).", bounded(0.0, 86400.0)),
    Setting("DATASOCK_MQTT_RATE", "rate", "500",
            "Input messages a second taken at most, all topics together (RPC requests "
            "included); beyond that, and beyond a burst of DATASOCK_MQTT_RATE_BURST seconds' "
            "worth, messages are shed: counted as 'shed' and logged once per interval "
            "(0: no limit).", _rate),
    Setting("DATASOCK_MQTT_RATE_PER_TOPIC", "rate_per_topic", "100",
            "Input messages a second taken at most on any one topic (MQTT does not tell the "
            "adapter which client published a message, so this is the per-publisher budget; "
            "0: no limit).", _rate),
    Setting("DATASOCK_MQTT_RATE_BURST", "rate_burst", "30",
            "Seconds of DATASOCK_MQTT_RATE and DATASOCK_MQTT_RATE_PER_TOPIC a burst may use "
            "at once (0.001 to 3600).", bounded(0.0, 3600.0)),
    Setting("DATASOCK_MQTT_RPC_CONCURRENCY", "rpc_concurrency", "16",
            "RPC requests in flight at once at most; a request beyond that is answered at "
            "once with the error 'busy: ...' (1 to 1024).", bounded(0, 1024, int)),
    Setting("DATASOCK_MQTT_RPC_MAX_REPLY", "rpc_max_reply", "16777216",
            "Bytes an RPC reply may have; a bigger result is answered with an error asking "
            "for less (1024 to 268435455).", bounded(1023, 268435455, int)),
    Setting("DATASOCK_MQTT_RPC_ALLOW", "rpc_allow",
            "consumer.get_data_node consumer.*.get_fields consumer.*.get_data",
            "Procedures (suffixes of DATASOCK_BASE_URI, shell-style wildcards) an MQTT client "
            "may call through datasock/rpc/request.", _words),
    Setting("DATASOCK_MQTT_CLIENT_ID", "client_id", "datasock-mqtt",
            "MQTT client id of the adapter (two adapters on one broker need different ids)."),
    Setting("DATASOCK_MQTT_POLL", "poll", "on",
            "on: poll the nodes that publish no live samples (sisock's DataNodeServers, "
            "archives) with get_data at their timelines' interval, so their new samples reach "
            "MQTT too; off: only live samples are published.", parse_flag, show=_on_off),
    Setting("DATASOCK_MQTT_POLL_SKIP", "poll_skip", None,
            "Names of nodes (space or comma separated) never polled.", _node_names),
    Setting("DATASOCK_MQTT_POLL_MIN_PERIOD", "poll_min_period", "1",
            "Seconds: no timeline is polled more often than this, whatever its interval "
            "(up to 3600).", bounded(0.0, 3600.0)),
    Setting("DATASOCK_MQTT_POLL_RATE", "poll_rate", "10",
            "Polls started per second at most, all nodes together (up to 1000).",
            bounded(0.0, 1000.0)),
    Setting("DATASOCK_MQTT_POLL_CONCURRENCY", "poll_concurrency", "4",
            "Polls in flight at once at most, all nodes together; each node has at most one "
            "(1 to 64).", bounded(0, 64, int)),
    Setting("DATASOCK_MQTT_POLL_TIMEOUT", "poll_timeout", "10",
            "Seconds a poll may take; a node that fails or times out is polled again after a "
            "wait doubling from 1 s to 60 s (up to 600).", bounded(0.0, 600.0)),
    Setting("DATASOCK_MQTT_POLL_BACKLOG", "poll_backlog", "600",
            "Seconds: after a pause (the router away, a failing node) polls catch up on at most "
            "this much data; older samples are not published (up to 86400).",
            bounded(0.0, 86400.0)),
))


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
    poll: bool = True
    poll_skip: tuple[str, ...] | None = None
    poll_min_period: float = 1.0
    poll_rate: float = 10.0
    poll_concurrency: int = 4
    poll_timeout: float = 10.0
    poll_backlog: float = 600.0
    max_fields: int = 10000
    max_payload: int = 65536
    max_values: int = 1000
    max_ahead: float = 60.0
    rate: float = 500.0
    rate_per_topic: float = 100.0
    rate_burst: float = 30.0
    rpc_concurrency: int = 16
    rpc_max_reply: int = 16777216

    @property
    def broker(self) -> BrokerAddress:
        """The broker address with the credentials that apply."""
        return dataclasses.replace(self.url, username=self.username or self.url.username,
                                   password=self.password or self.url.password)


def poll_settings(mqtt: MqttSettings) -> PollSettings:
    """The pull-only-node poller's settings."""
    return PollSettings(enabled=mqtt.poll, skip=frozenset(mqtt.poll_skip or ()),
                        min_period=mqtt.poll_min_period, rate=mqtt.poll_rate,
                        concurrency=mqtt.poll_concurrency, timeout=mqtt.poll_timeout,
                        backlog=mqtt.poll_backlog)


def rate_settings(mqtt: MqttSettings) -> RateSettings:
    """The input rate budgets."""
    return RateSettings(total=mqtt.rate, per_topic=mqtt.rate_per_topic, burst=mqtt.rate_burst)


def input_limits(mqtt: MqttSettings):
    """The MQTT-fed node's limits."""
    from .feed import InputLimits  # feed imports the SDK: not needed to parse settings

    return InputLimits(max_fields=mqtt.max_fields, max_payload=mqtt.max_payload,
                       max_values=mqtt.max_values, max_ahead=mqtt.max_ahead)


def load(environ: Mapping[str, str] | None = None) -> MqttSettings:
    return MqttSettings(**SETTINGS.parse(environ))
