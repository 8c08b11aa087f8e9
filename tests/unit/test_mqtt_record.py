"""Recording MQTT-fed values across restarts (a file in a temporary directory, no broker)."""
from __future__ import annotations

from datasock.mqtt.feed import MqttFedNode
from datasock.mqtt.record import Recorder

T0 = 1_700_000_000.0


def make(tmp_path, capacity=100):
    node = MqttFedNode("mqtt", ["datasock/in/#"], capacity, clock=lambda: T0)
    return node, Recorder(tmp_path / "mqtt" / "mqtt.jsonl", node)


def feed(node, recorder, topic, payload):
    recorder.append(node.feed(topic, payload))


def test_values_survive_a_restart(tmp_path):
    node, rec = make(tmp_path)
    assert rec.restore() == 0
    for i in range(5):
        feed(node, rec, "datasock/in/a", f'{{"value": {i}, "t": {T0 + i}}}'.encode())
    feed(node, rec, "datasock/in/b", b'{"x": 1, "y": true}')
    rec.close()

    node2, rec2 = make(tmp_path)
    assert rec2.restore() == 7
    assert list(node2.contents()) == list(node.contents())
    assert node2.field_names() == ["a", "b_x", "b_y"]


def test_torn_last_line_is_skipped(tmp_path):
    node, rec = make(tmp_path)
    rec.restore()
    feed(node, rec, "datasock/in/a", b"1")
    rec.close()
    with (tmp_path / "mqtt" / "mqtt.jsonl").open("ab") as f:
        f.write(b'["a", 17000')
    node2, rec2 = make(tmp_path)
    assert rec2.restore() == 1 and node2.latest("a") == (T0, 1.0)


def test_file_stays_bounded(tmp_path):
    clock = iter(T0 + i for i in range(100_000))
    node = MqttFedNode("mqtt", ["datasock/in/#"], 10, clock=lambda: next(clock))
    rec = Recorder(tmp_path / "r.jsonl", node)
    rec.restore()
    for i in range(1000):
        rec.append(node.feed("datasock/in/a", str(i).encode()))
    rec.close()
    lines = (tmp_path / "r.jsonl").read_bytes().splitlines()
    assert len(lines) <= 21
    node2 = MqttFedNode("mqtt", ["datasock/in/#"], 10)
    Recorder(tmp_path / "r.jsonl", node2).restore()
    assert [v for _, _, v in node2.contents()] == [float(i) for i in range(990, 1000)]


def test_a_value_too_far_ahead_is_never_restored(tmp_path):
    """A recording made before times were checked (or with a clock since set back) may hold
    a poisoned value: it is dropped at restore, and the file rewritten without it."""
    path = tmp_path / "mqtt" / "mqtt.jsonl"
    path.parent.mkdir()
    path.write_bytes(b'["a", %r, 1.0]\n["a", %r, 2.0]\n["b", %r, 3.0]\n'
                     % (T0 - 1, 1_700_000_000_000.0 * 1000, T0 - 2))
    node, rec = make(tmp_path)
    assert rec.restore() == 2
    assert list(node.contents()) == [("a", T0 - 1, 1.0), ("b", T0 - 2, 3.0)]
    node.feed("datasock/in/a", b"5")                 # the field is not blocked
    rec.close()
    assert b"1700000000000000" not in path.read_bytes()


def test_one_process_records_a_file(tmp_path):
    import pytest
    from datasock.mqtt.record import RecordingBusy

    node, rec = make(tmp_path)
    rec.restore()
    _, other = make(tmp_path)
    with pytest.raises(RecordingBusy):
        other.restore()
    rec.close()
    other.restore()
    other.close()
