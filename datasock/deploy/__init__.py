"""Deployment and operation: ``datasock init``, ``datasock backup``, ``datasock restore``.

* :mod:`.envfile` plans the ``.env`` of the docker compose stack (docker/docker-compose.yml);
  :mod:`.init` writes it with fresh secrets and provisions the state directory;
* :mod:`.backup` plans and makes backups of the archive index, the state directory and the
  Grafana and Node-RED data, and restores them;
* :mod:`.exposure` is the rule that keeps an exposed router or HTTP bridge from starting
  with missing or default secrets; :mod:`.health` the containers' health checks.

See docs/deployment.rst and docs/operations.rst.
"""
from __future__ import annotations

from ..settings import Setting


def _path(text: str):
    from pathlib import Path
    return Path(text).absolute()


SETTINGS: tuple[Setting, ...] = (
    Setting("DATASOCK_GRAFANA_DATA", "grafana_data", None,
            "Grafana's data directory (grafana.db, plugins), included in backups; unset: not backed up.",
            _path),
    Setting("DATASOCK_NODERED_DATA", "nodered_data", None,
            "Node-RED's user directory (flows, credentials, installed nodes), included in backups; "
            "unset: not backed up.", _path),
    Setting("DATASOCK_BACKUP_KEEP", "keep", "0",
            "Backups ``datasock backup`` keeps in its output directory, newest first; older "
            "``datasock-backup-*.tar.gz`` files are deleted (0: keep all).", int),
)
