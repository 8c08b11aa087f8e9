"""Start-up stays quiet: importing the WAMP stack prints nothing (no bjdata NumPy-ABI traceback)."""
import subprocess
import sys


def test_importing_autobahn_serializers_prints_nothing():
    out = subprocess.run([sys.executable, "-c", "import autobahn.wamp.serializer, datasock.client"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert out.stderr == "" and out.stdout == ""


def test_cli_help_is_clean():
    out = subprocess.run([sys.executable, "-m", "datasock", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "Traceback" not in out.stderr
    for command in ("up", "router", "hub", "node", "nodes", "fields", "get", "scan", "http", "mqtt", "init", "backup", "restore"):
        assert command in out.stdout


def test_the_http_bridge_does_not_import_the_cli():
    """Layers import downward: the bridge's app and service never load datasock.cli."""
    code = ("import sys, datasock.http_bridge.app, datasock.http_bridge.service; "
            "assert 'datasock.cli' not in sys.modules, 'datasock.cli imported'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
