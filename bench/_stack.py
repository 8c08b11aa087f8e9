"""The benchmarks' throw-away stack: :class:`datasock.testing.devstack.Stack` in a temporary
directory that is removed on stop, logging quietly."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from datasock.testing import devstack


class Stack(devstack.Stack):
    def __init__(self, log_level: str = "warn"):
        super().__init__(Path(tempfile.mkdtemp(prefix="datasock-bench-")), log_level=log_level)

    def describe_failures(self, tail: int = 40) -> str:
        return "\n".join(
            f"--- {p.name} (pid {p.pid}, {'running' if p.alive() else 'exited'}) ---\n"
            + "\n".join(p.output().splitlines()[-tail:]) for p in self.procs)

    def stop(self) -> None:
        self.stop_all()
        shutil.rmtree(self.tmp, ignore_errors=True)
