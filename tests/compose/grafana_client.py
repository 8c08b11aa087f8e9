"""What Grafana's JSON data source asks the HTTP bridge, from where Grafana stands.

Run inside the compose stack's ``backend`` network (a one-off container of the datasock
image, ``docker compose run``): the bridge is not published, Grafana is its only client,
and Grafana's image cannot be run by the test. Standard library only (the image has no
``requests``). Prints one JSON document: what each request answered.

    python grafana_client.py URL TARGET...     (token: DATASOCK_HTTP_SECRET)
"""
from __future__ import annotations

import datetime
import json
import os
import sys
import urllib.error
import urllib.request


def request(url: str, path: str, body=None, token: str | None = None) -> tuple[int, object]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, headers=headers,
                                 method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, text = r.status, r.read()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text.decode(errors="replace")[:200]


def iso(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def query_body(targets: list[str], start: datetime.datetime, end: datetime.datetime) -> dict:
    """The body Grafana 11 (simpod-json-datasource) posts to /query."""
    return {
        "app": "dashboard", "requestId": "Q1", "timezone": "browser", "panelId": 1,
        "range": {"from": iso(start), "to": iso(end), "raw": {"from": "now-3h", "to": "now"}},
        "interval": "10s", "intervalMs": 10000, "maxDataPoints": 500,
        "targets": [{"datasource": {"type": "simpod-json-datasource", "uid": "datasock"},
                     "editorMode": "builder", "payload": {}, "refId": chr(65 + i), "target": target}
                    for i, target in enumerate(targets)],
    }


def main(url: str, targets: list[str]) -> dict:
    token = os.environ["DATASOCK_HTTP_SECRET"]
    now = datetime.datetime.now(datetime.timezone.utc)
    start = now - datetime.timedelta(hours=3)
    out = {}
    out["health"] = request(url, "/", token=token)
    out["no_token"] = request(url, "/metrics", {})[0]
    out["wrong_token"] = request(url, "/metrics", {}, token=token[::-1] + "x")[0]
    status, metrics = request(url, "/metrics", {}, token=token)
    out["metrics"] = [status, sorted(m["value"] for m in metrics) if status == 200 else metrics]
    status, series = request(url, "/query", query_body(targets, start, now), token=token)
    out["query"] = [status, series]
    # the web page's plotting library, which the image carries (docs/web.rst)
    out["uplot"] = request(url, "/web/vendor/uPlot.esm.js", token=token)[0]
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2:])))
