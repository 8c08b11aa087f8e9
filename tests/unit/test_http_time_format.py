"""The same time options on the command line and in ``/api/data`` (issue 14): ``time_format=unix|iso``
writes what ``datasock get --time-format`` writes, and ``from``/``to`` take the CLI's time forms.

Through Flask's test client against the fake backend of test_http_routes (no router).
"""
from __future__ import annotations

import csv
import io
import time

import numpy as np
import pytest

from datasock import cli, timeutil, wire
from datasock.errors import InvalidArgument
from datasock.http_bridge.parsing import parse_instant
from datasock.http_bridge.errors import RequestError
from tests.unit.test_http_routes import DAY, T0, error_of, make_client, values

WINDOW = {"node": "wide", "from": f"{DAY}T12:00:00Z", "to": f"{DAY}T12:00:20Z", "field": "f1,mode"}


@pytest.fixture
def client(tmp_path):
    return make_client(tmp_path)


def cli_csv(client, time_format: str) -> str:
    """What ``datasock get wide f1 mode --time-format ...`` prints for the reply the node gave the bridge."""
    fetch = client.backend.fetches[-1]["one"]
    reply = client.backend.reply(fetch)
    timeline_of = {"f1": "one_hz", "mode": "slow"}
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(
        cli.csv_rows(wire.rows_by_time(reply, ["f1", "mode"], timeline_of), ["f1", "mode"], time_format))
    return out.getvalue()


@pytest.mark.parametrize("time_format", ["unix", "iso"])
def test_rest_csv_writes_what_the_cli_writes(client, time_format):
    text = client.get("/api/data", query_string={**WINDOW, "format": "csv", "time_format": time_format})
    assert text.status_code == 200 and text.mimetype == "text/csv"
    assert text.get_data(as_text=True) == cli_csv(client, time_format)
    table = list(csv.reader(io.StringIO(text.get_data(as_text=True))))
    if time_format == "unix":
        assert table[0] == ["t", "f1", "mode"] and table[11][0] == f"{T0 + 10:.6f}"
    else:
        assert table[0] == ["time", "f1", "mode"] and table[11][0] == f"{DAY}T12:00:10.000Z"
    assert table[11][2] == "CV" and table[2][2] == ""


def test_each_default_stays(client):
    """REST CSV: ISO unless asked; the CLI: unix unless asked; JSON rows: milliseconds."""
    rest = client.get("/api/data", query_string={**WINDOW, "format": "csv"}).get_data(as_text=True)
    assert rest == cli_csv(client, "iso") and rest.startswith("time,")
    assert cli.parser().parse_args(["get", "wide", "f1", "--start", "now-1h"]).time_format == "unix"
    assert client.get("/api/data", query_string=WINDOW).get_json()[10]["time"] == (T0 + 10) * 1000


def test_rest_csv_unix_with_numbers_only_takes_the_fast_path_alike(client):
    fast = client.get("/api/data", query_string={**WINDOW, "field": "f1", "format": "csv", "time_format": "unix"})
    rows = list(csv.reader(io.StringIO(fast.get_data(as_text=True))))
    assert rows[0] == ["t", "f1"] and len(rows) == 21
    assert rows[1] == [f"{T0:.6f}", repr(values("f1", np.array([T0]))[0])]


def test_json_rows_and_columns_take_time_format_too(client):
    rows = {tf: client.get("/api/data", query_string={**WINDOW, "time_format": tf}).get_json()
            for tf in ("unix", "iso")}
    assert rows["unix"][10]["time"] == T0 + 10 and rows["iso"][10]["time"] == f"{DAY}T12:00:10.000Z"
    assert rows["unix"][10]["mode"] == rows["iso"][10]["mode"] == "CV"
    columns = client.get("/api/data", query_string={**WINDOW, "format": "columns", "time_format": "iso"}).get_json()
    assert columns["time"] == [r["time"] for r in rows["iso"]]
    columns = client.get("/api/data", query_string={**WINDOW, "format": "columns", "time_format": "unix"}).get_json()
    assert columns["time"] == [r["time"] for r in rows["unix"]]


def test_a_bad_time_format_is_a_400_before_any_node_is_asked(client):
    error = error_of(client.get("/api/data", query_string={**WINDOW, "time_format": "ms"}), 400)
    assert "time_format must be one of unix, iso" in error["message"]
    assert client.backend.fetches == []


@pytest.mark.parametrize("text", ["now", "now-1h", "now - 90m", "now-1.5d", "now-250ms", "-3600", "0",
                                  "1700000000.5", "2026-11-21T06:00:00Z", "2026-11-21 06:00",
                                  "1969-07-20T20:17:00Z"])
def test_rest_and_cli_take_the_same_time_forms(client, text):
    now = time.time()
    cli_value = timeutil.parse_time_arg(text, now)
    rest_value = parse_instant(text, now, "from")
    # the CLI sends a relative time as it is, for the node to resolve; REST resolves it at once
    expected = now + cli_value if cli_value <= 0 else cli_value
    assert rest_value == pytest.approx(max(expected, timeutil.EARLIEST_WIRE_TIME))
    # an empty window [text, text): the fake node makes 1 Hz samples over whatever it is asked
    r = client.get("/api/data", query_string={**WINDOW, "from": text, "to": text})
    assert r.status_code == 200 and r.get_json() == [], r.get_data(as_text=True)
    assert client.backend.fetches[-1]["one"].start == pytest.approx(rest_value, abs=60)


@pytest.mark.parametrize("text", ["soon", "now+1h", "now-1y", "nan", "now-100000000000d", ""])
def test_rest_and_cli_refuse_the_same_time_forms(client, text):
    with pytest.raises(InvalidArgument):
        timeutil.parse_time_arg(text, time.time())
    with pytest.raises(RequestError):
        parse_instant(text, time.time(), "from")
    assert error_of(client.get("/api/data", query_string={**WINDOW, "from": text}), 400)["code"] == "bad_time"
