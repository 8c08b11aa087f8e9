"""A component's own ``print`` reaches the operator once logging has started (issue 14), in both
log formats and at the default (quiet) level.

Each case is a fresh Python process: Twisted's log can begin only once per process. The
program runs as every datasock component does, through :func:`datasock.runtime.run_program`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROGRAM = """
import sys
from twisted.logger import Logger
from datasock import runtime

def program(settings):
    print("meant for the operator")
    print("a problem, said on stderr", file=sys.stderr)
    Logger(namespace="datasock.test").info("an info event, below the default level")
    Logger(namespace="datasock.test").warn("a warning event")
    return 0

sys.exit(runtime.run_program("datasock printer", program))
"""


def run(tmp_path, fmt: str, level: str = "warn") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATASOCK_")}
    env.update(DATASOCK_HOME=str(tmp_path), DATASOCK_LOG_FORMAT=fmt, DATASOCK_LOG_LEVEL=level)
    return subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=60)


def test_text_format_leaves_stdout_and_stderr_as_printed(tmp_path):
    proc = run(tmp_path, "text")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "meant for the operator\n"
    err = proc.stderr.splitlines()
    assert "a problem, said on stderr" in err
    assert any(line.endswith("a warning event") for line in err), err
    assert not any("info event" in line for line in err)


@pytest.mark.parametrize("level", ["warn", "error"])
def test_json_format_makes_each_printed_line_a_json_line_shown_at_any_level(tmp_path, level):
    proc = run(tmp_path, "json", level)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    lines = [json.loads(line) for line in proc.stderr.splitlines()]   # every line is JSON
    printed = {e["event"]: e for e in lines if e.get("system") in ("stdout", "stderr")}
    assert printed["meant for the operator"]["level"] == "info"
    assert printed["meant for the operator"]["system"] == "stdout"
    assert printed["a problem, said on stderr"]["level"] == "warn"
    assert {e["component"] for e in lines} == {"datasock printer"}
    events = [e["event"] for e in lines]
    assert ("a warning event" in events) == (level == "warn")
    assert "an info event, below the default level" not in events
