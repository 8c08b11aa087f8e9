"""Small helpers for child processes and ports."""
from __future__ import annotations

import ctypes
import signal
import socket
import time
from typing import Callable

_PR_SET_PDEATHSIG = 1


def child_preexec() -> None:
    """In a child: die with the parent, so no crossbar or node outlives its supervisor."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: the supervisor still stops its children on exit


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float,
                  alive: Callable[[], bool] = lambda: True) -> bool:
    """Wait until something accepts on host:port; False on timeout or when ``alive()`` turns false."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        if port_open(host, port):
            return True
        time.sleep(0.1)
    return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
