"""The broker configuration datasock ships (``datasock up`` with its embedded broker is in test_up.py)."""
from __future__ import annotations

from datasock.testing.mqtt import Collector
from datasock.procutil import free_port


def test_shipped_broker_config_runs(tmp_path):
    """docker/mosquitto/mosquitto.conf is a config Mosquitto accepts (port and paths moved)."""
    from datasock.testing.mqtt import Mosquitto
    from .conftest import REPO

    port = free_port()
    text = (REPO / "docker" / "mosquitto" / "mosquitto.conf").read_text()
    assert "listener 1883 127.0.0.1" in text and "persistence_location /mosquitto/data/" in text
    text = text.replace("listener 1883 127.0.0.1", f"listener {port} 127.0.0.1").replace(
        "persistence_location /mosquitto/data/", f"persistence_location {tmp_path}/")
    broker = Mosquitto(tmp_path / "b", port=port)
    broker.conf.write_text(text)
    broker.start()
    try:
        c = Collector(port)
        c.subscribe("a/#", qos=2)
        c.publish("a/b", "1", qos=2).wait_for_publish(5)
        assert c.wait_for(lambda m: True, timeout=5).payload == b"1"
        c.close()
    finally:
        broker.stop()
