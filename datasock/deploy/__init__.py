"""Deployment and operation: ``datasock init``, ``datasock backup``, ``datasock restore``.

* :mod:`.envfile` plans the ``.env`` of the docker compose stack (docker/docker-compose.yml);
  :mod:`.init` writes it with fresh secrets and provisions the state directory;
* :mod:`.backup` plans and makes backups of the archive index, the state directory and the
  Grafana and Node-RED data, and restores them;
* :mod:`.health` is the containers' health checks. (The rule that keeps an exposed router
  or HTTP bridge from starting with missing or default secrets is :mod:`datasock.exposure`,
  which those components import.)

See docs/deployment.rst and docs/operations.rst.
"""
from __future__ import annotations

from ..errors import InvalidArgument
from ..settings import Group, Setting, parse_int, parse_path


def _check(values: dict) -> None:
    if values["keep"] < 0:
        raise InvalidArgument("DATASOCK_BACKUP_KEEP must be 0 or more")


SETTINGS = Group("deploy", "Backups (datasock backup, datasock restore)", (
    Setting("DATASOCK_GRAFANA_DATA", "grafana_data", None,
            "Grafana's data directory (grafana.db, plugins), included in backups; unset: not backed up.",
            parse_path),
    Setting("DATASOCK_NODERED_DATA", "nodered_data", None,
            "Node-RED's user directory (flows, credentials, installed nodes), included in backups; "
            "unset: not backed up.", parse_path),
    Setting("DATASOCK_BACKUP_KEEP", "keep", "0",
            "Backups ``datasock backup`` keeps in its output directory, newest first; older "
            "``datasock-backup-*.tar.gz`` files are deleted (0: keep all).", parse_int),
), _check)
