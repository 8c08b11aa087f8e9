"""A small sample archive written with so3g's own HK writer, so a new stack has history to show.

Like the OCS aggregator: schema v2, one file per hour, ``<dir>/<ctime[:5]>/<ctime>.g3``,
one data frame per provider and minute. Values are smooth with a little noise, so
plots look like housekeeping rather than a test pattern.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from .hkfile import Writer

#: feed address -> (sample period s, {block: {field: kind}})
FEEDS = {
    "observatory.LSA22YE.feeds.temperatures": (1.0, {"temps": {
        f"Channel_{i:02d}_T": "temperature" for i in range(1, 9)}}),
    "observatory.pressures.feeds.pressures": (10.0, {"gauges": {
        f"gauge_{i}": "pressure" for i in range(1, 4)}}),
    "observatory.ups.feeds.ups": (5.0, {"ups": {
        "battery_charge": "int", "on_battery": "bool", "status": "string"}}),
}

HOUR = 3600.0
FRAME = 60.0


def _values(kind: str, t: np.ndarray, i: int, rng: np.random.Generator):
    phase = 2 * np.pi * t / 86400.0
    if kind == "temperature":
        return 4.0 * (i + 1) + 0.2 * np.sin(phase + i) + rng.normal(0, 0.005, len(t))
    if kind == "pressure":
        return 1e-6 * (i + 1) * (1 + 0.1 * np.sin(phase * 3 + i)) * np.exp(rng.normal(0, 0.01, len(t)))
    if kind == "int":
        return np.clip(100 - (t % 7200) / 720, 0, 100).astype(np.int64)
    if kind == "bool":
        return (t % 7200) < 60
    return np.where((t % 7200) < 60, "on battery", "online").astype(object)


def write_sample_archive(directory: Path, end: float, hours: int = 6, seed: int = 0) -> list[Path]:
    """``hours`` hourly files ending at ``end`` (rounded down to the hour); returns their paths."""
    rng = np.random.default_rng(seed)
    end = np.floor(end / HOUR) * HOUR
    paths = []
    for h in range(hours):
        t0 = end - (hours - h) * HOUR
        ctime = str(int(t0))
        path = Path(directory) / ctime[:5] / f"{ctime}.g3"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".g3.tmp")
        writer = Writer(str(tmp), version=2, start_time=t0, description="datasock sample archive")
        for feed in FEEDS:
            writer.add_provider(feed, t0)
        for minute in np.arange(t0, t0 + HOUR, FRAME):
            for feed, (period, blocks) in FEEDS.items():
                t = np.arange(minute, minute + FRAME, period)
                writer.write(feed, {block: (t, {name: _values(kind, t, i, rng)
                                                for i, (name, kind) in enumerate(fields.items())})
                                    for block, fields in blocks.items()})
        writer.close()
        del writer
        os.replace(tmp, path)
        paths.append(path)
    return paths


def write_sample_archive_once(directory: Path, hours: int = 6) -> list[Path]:
    """Write the sample archive into ``directory`` unless it already holds ``.g3`` files
    (other than the recorder's, under ``recorded/``: a new stack's recorder may start first)."""
    directory = Path(directory)
    if directory.is_dir() and any(p.relative_to(directory).parts[0] != "recorded"
                                  for p in directory.rglob("*.g3")):
        return []
    directory.mkdir(parents=True, exist_ok=True)
    return write_sample_archive(directory, time.time(), hours)
