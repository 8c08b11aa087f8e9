"""The recorder's settings (pure: importable without so3g, shown by ``datasock config``)."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Mapping

from .. import settings as settings_mod
from ..settings import Group, Setting, at_least, parse_path, parse_positive_float, parse_words
from .rules import Rules, parse_keep_days, parse_rates, parse_selection

#: where the recorder writes under the archive's DATA_DIRECTORY unless DATASOCK_RECORD_DIR says
RECORDED_SUBDIR = "recorded"


def parse_nonnegative_float(text: str) -> float:
    value = float(text)
    if not 0 <= value < math.inf:
        raise ValueError(f"{value} is not a finite number >= 0")
    return value


def _selection(text: str) -> tuple[str, ...]:
    return parse_selection(parse_words(text))


def _rates(text: str):
    return parse_rates(parse_words(text))


def _keep(text: str):
    return parse_keep_days(parse_words(text))


def _pairs_text(pairs) -> str:
    return " ".join(f"{pattern}={value:g}" for pattern, value in pairs)


SETTINGS = Group("recorder", "The recorder (datasock recorder): live samples into so3g HK files", (
    Setting("DATASOCK_RECORD_NODES", "nodes", "*",
            "Which live samples are recorded: globs of ``<node>`` (all its fields) or "
            "``<node>::<field>``, separated by spaces or commas; ``-``: record nothing (recording off).",
            _selection),
    Setting("DATASOCK_RECORD_EXCLUDE", "exclude", None,
            "Globs of ``<node>`` or ``<node>::<field>`` never recorded, even when "
            "DATASOCK_RECORD_NODES names them.", _selection),
    Setting("DATASOCK_RECORD_MAX_RATE", "max_rate", None,
            "Most samples per second recorded per field: ``<glob>=<Hz>`` words (glob as in "
            "DATASOCK_RECORD_NODES), the first match wins; a field no word matches is recorded at the "
            "rate it is published. Fields of one timeline with the same rate stay co-sampled.",
            _rates, show=_pairs_text),
    Setting("DATASOCK_RECORD_DIR", "directory", None,
            "Directory the recorder writes its HK files under (``<node>/<ctime[:5]>/<ctime>.g3``); "
            "default ``recorded/`` in the archive's DATA_DIRECTORY, so the scanner indexes them.",
            parse_path),
    Setting("DATASOCK_RECORD_FLUSH", "flush_interval", "5",
            "Seconds between two writes of the samples received (at most this much is lost when "
            "the recorder is killed).", parse_positive_float),
    Setting("DATASOCK_RECORD_ROTATE", "rotate_seconds", "3600",
            "Seconds after which a node's file is closed and a new one started.", parse_positive_float),
    Setting("DATASOCK_RECORD_ROTATE_MB", "rotate_mb", "64",
            "Size, MiB, at which a node's file is closed and a new one started.", parse_positive_float),
    Setting("DATASOCK_RECORD_KEEP_DAYS", "keep_days", None,
            "Retention: ``<node glob>=<days>`` words, the first match wins: a node's recorded files "
            "last written more than that many days ago are deleted (the scanner then forgets them). "
            "A node no word matches is kept forever.", _keep, show=_pairs_text),
    Setting("DATASOCK_RECORD_CATCHUP", "catchup_seconds", "86400",
            "Catch-up after a gap: at start, when its router connection comes back and when a "
            "recorded node joins, the recorder asks each node for the samples since the newest one "
            "it recorded of it (read back from its own files at start), at most this many seconds "
            "back (also how far back a node recorded for the first time is filled from its "
            "buffer); 0: no catch-up.", parse_nonnegative_float),
    Setting("DATASOCK_RECORD_MAX_PENDING", "max_pending", "2000000",
            "Most samples held in memory between two writes; past it the oldest wait is cut short "
            "(written at once) and, while a write is still under way, new samples are dropped and "
            "counted.", at_least(1000)),
))


@dataclasses.dataclass(frozen=True)
class RecorderSettings:
    nodes: tuple[str, ...]
    exclude: tuple[str, ...] | None
    max_rate: tuple[tuple[str, float], ...] | None
    directory: Path
    flush_interval: float
    rotate_seconds: float
    rotate_mb: float
    keep_days: tuple[tuple[str, float], ...] | None
    catchup_seconds: float
    max_pending: int

    @property
    def rules(self) -> Rules:
        return Rules(self.nodes, self.exclude or (), self.max_rate or (), self.keep_days or ())

    @property
    def rotate_bytes(self) -> int:
        return int(self.rotate_mb * settings_mod.MIB)


def load(environ: Mapping[str, str] | None = None) -> RecorderSettings:
    """The recorder settings; the directory defaults to ``recorded/`` under the archive's
    DATA_DIRECTORY (itself ``$DATASOCK_HOME/archive`` by default)."""
    import os

    environ = os.environ if environ is None else environ
    values = SETTINGS.parse(environ)
    if values["directory"] is None:
        data = environ.get("DATA_DIRECTORY")
        if data:
            base = Path(data).absolute()
        else:
            base = settings_mod.parse_settings(settings_mod.SETTINGS[:1], environ)["home"] / "archive"
        values["directory"] = base / RECORDED_SUBDIR
    return RecorderSettings(**values)
