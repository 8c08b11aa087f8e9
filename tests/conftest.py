"""How the suite is split over pytest-xdist workers (``make test``: ``-n 4 --dist loadfile``).

With ``--dist loadfile`` each test file is one unit of work, run by one worker from start to
end, so a module-scoped fixture (``shared_stack``, a private broker, a sisock stack) is still
set up once per file, and tests/compose/test_compose_real.py builds and runs its one Docker
stack in one worker, beside the rest (it mostly waits on Docker). (``--dist loadgroup`` with
``xdist_group`` marks would say the same, but with pytest 9.2 it silently stops grouping:
pytest-xdist issue 1386.)

Here, on each worker, the files known to take longest go first (``--no-loadscope-reorder``
keeps this order), so that no worker is left with a long file at the end while the others
idle; the rest keep their order. Run serially (``make test JOBS=0``, or plain ``pytest``),
nothing here applies.
"""
from __future__ import annotations

import pytest

#: files (paths under tests/) handed out first, longest first (from ``--durations``); a file
#: missing here only starts later, it still runs
SLOW_FIRST = (
    "compose/test_compose_real.py",
    "integration/test_sisock_real.py",
    "integration/test_cli.py",
    "integration/test_recorder.py",
    "integration/test_mqtt_adapter.py",
    "integration/test_recorder_mqtt.py",
    "integration/test_sisock_legacy.py",
    "integration/test_http_bridge.py",
    "integration/test_sisock_migration.py",
    "integration/test_metrics.py",
    "integration/test_ocs_interop.py",
    "integration/test_up_extra_nodes.py",
    "integration/test_up_liveness.py",
    "integration/test_catalog_fresh.py",
)


def _rank(item: pytest.Item) -> int:
    path = item.nodeid.split("::", 1)[0].removeprefix("tests/")
    return SLOW_FIRST.index(path) if path in SLOW_FIRST else len(SLOW_FIRST)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if hasattr(config, "workerinput"):       # an xdist worker: the controller schedules its list
        items.sort(key=_rank)                # stable: each file's tests keep their order
