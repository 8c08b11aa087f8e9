"""The Mosquitto broker datasock ships, and the embedded one ``datasock up`` starts.

Mosquitto's defaults drop messages it has acknowledged: a client's queue holds
``max_queued_messages 1000`` and the rest of a burst is discarded silently
(measured: up to 3.1 % of QoS 1 messages with 100 in flight). The configuration
here lifts that limit, so a QoS 1/2 message the broker accepted is delivered.
"""
from __future__ import annotations

import getpass
import shutil
from pathlib import Path

from ..exposure import is_loopback
from ..settings import Settings
from .config import MqttSettings

SYSTEM_MOSQUITTO = "/usr/sbin/mosquitto"


def broker_config(host: str, port: int, persistence_dir: Path | None = None,
                  run_as: str | None = None) -> str:
    """A mosquitto.conf listening on ``host:port`` that never drops what it acknowledged.

    ``run_as`` (default: the current user) keeps a broker started by root as root
    rather than Mosquitto's own user, which could not read datasock's state directory.
    """
    lines = [
        "# written by datasock: an MQTT broker for the datasock adapter and Node-RED",
        f"user {run_as or getpass.getuser()}",
        f"listener {port} {host}",
        # loopback only unless configured otherwise: anonymous clients are fine there
        "allow_anonymous true",
        # 0 = no limit: the default 1000 silently drops acknowledged QoS 1/2 messages in bursts
        "max_queued_messages 0",
        "max_queued_bytes 0",
        # more QoS 1/2 messages in flight per client keeps bursts moving
        "max_inflight_messages 1000",
        "set_tcp_nodelay true",
        # Node-RED reconnects with a persistent session: keep its queued messages for a while
        "persistent_client_expiration 1d",
        "log_type error",
        "log_type warning",
        "log_dest stderr",
    ]
    if persistence_dir is not None:
        lines += ["persistence true", f"persistence_location {persistence_dir}/"]
    return "\n".join(lines) + "\n"


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return SYSTEM_MOSQUITTO if Path(SYSTEM_MOSQUITTO).exists() else None


def write_embedded_config(settings: Settings, mqtt: MqttSettings) -> Path:
    """Write the embedded broker's config under the state directory; returns its path."""
    directory = settings.home / "mosquitto"
    (directory / "data").mkdir(parents=True, exist_ok=True)
    path = directory / "mosquitto.conf"
    path.write_text(broker_config(mqtt.url.host, mqtt.url.port, directory / "data"))
    return path


def embedded_broker_plan(broker_answers: bool, mqtt: MqttSettings,
                         binary: str | None) -> tuple[bool, str]:
    """Whether ``datasock up`` should start its own broker, and what to tell the user (pure)."""
    where = mqtt.url.url
    if broker_answers:
        return False, f"mqtt    using the broker at {where}"
    if mqtt.url.tls:
        return False, f"mqtt    no broker answers at {where}; the embedded broker does not do TLS"
    if not is_loopback(mqtt.url.host):
        return False, (f"mqtt    no broker answers at {where}; not starting one on a "
                       "non-loopback address (start your broker, or use 127.0.0.1)")
    if binary is None:
        return False, (f"mqtt    no broker answers at {where} and mosquitto is not installed "
                       "(apt install mosquitto); the adapter keeps retrying")
    return True, f"mqtt    no broker answered at {where}: starting an embedded Mosquitto there"


def embedded_broker(settings: Settings, mqtt: MqttSettings) -> tuple[list[str] | None, str]:
    """The command of the broker ``datasock up`` starts (None: it starts none), and what to say.

    Writes the embedded broker's config when one is to start.
    """
    from ..procutil import port_open

    binary = mosquitto_binary()
    start, message = embedded_broker_plan(port_open(mqtt.url.host, mqtt.url.port), mqtt, binary)
    if not start:
        return None, message
    return [binary, "-c", str(write_embedded_config(settings, mqtt))], message
