"""Unpacking a backup safely, with or without tarfile's extraction filters (Python < 3.11.4)."""
from __future__ import annotations

import datetime
import io
import json
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from datasock.deploy import backup


def member(name: str, kind=tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


SAFE = [member("manifest.json"), member("state", tarfile.DIRTYPE), member("state/secrets.json"),
        member("node-red/node_modules/.bin/node-red", tarfile.SYMTYPE, "../node-red/red.js"),
        member("node-red/current", tarfile.SYMTYPE, "flows.json")]


def test_what_datasock_writes_may_be_unpacked():
    assert backup.unpack_problem(SAFE) is None


@pytest.mark.parametrize("bad,why", [
    (member("/etc/passwd"), "outside"),
    (member("../x"), "outside"),
    (member("state/../../x"), "outside"),
    (member("dev", tarfile.CHRTYPE), "not a file"),
    (member("fifo", tarfile.FIFOTYPE), "not a file"),
    (member("hard", tarfile.LNKTYPE, "state/secrets.json"), "not a file"),
    (member("state/l", tarfile.SYMTYPE, "/etc"), "outside"),
    (member("state/l", tarfile.SYMTYPE, "../../etc"), "outside"),
])
def test_members_that_would_leave_the_destination_are_refused(bad, why):
    assert why in backup.unpack_problem(SAFE + [bad])


def test_no_member_is_reached_through_a_link():
    # each link alone stays inside, but "up/up" would be the parent of the destination
    members = [member("up", tarfile.SYMTYPE, "."), member("a", tarfile.DIRTYPE),
               member("a/up", tarfile.SYMTYPE, ".."), member("a/up/x")]
    assert "behind a symbolic link" in backup.unpack_problem(members)


@given(st.lists(st.sampled_from(["a", "b", ".", "..", "c.d"]), min_size=1, max_size=6))
def test_a_name_is_refused_exactly_when_it_leaves_the_destination(parts):
    import posixpath

    name = "/".join(parts)
    leaves = posixpath.normpath(name) == ".." or posixpath.normpath(name).startswith("../")
    assert (backup.unpack_problem([member(name)]) is not None) == leaves


def _backup_file(path: Path, extra: tarfile.TarInfo | None = None) -> Path:
    manifest = backup.manifest([backup.Part("state", "dir")], {"state": True},
                               datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc), "0", "x")
    with tarfile.open(path, "w:gz") as tar:
        for name, data, mode in (("manifest.json", json.dumps(manifest).encode(), 0o644),
                                 ("state/secrets.json", b"{}", 0o4777)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("state/link")
        link.type, link.linkname = tarfile.SYMTYPE, "secrets.json"
        tar.addfile(link)
        if extra is not None:
            tar.addfile(extra, io.BytesIO(b"x" * extra.size))
    return path


@pytest.fixture(params=["filter", "by hand"])
def python(request, monkeypatch):
    if request.param == "by hand":   # as on Python 3.11.0-3.11.3
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    elif not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python has no tarfile extraction filters")
    return request.param


def test_read_backup_unpacks_without_set_id_or_group_write_bits(tmp_path, python):
    into = tmp_path / "into"
    into.mkdir()
    saved = backup.read_backup(_backup_file(tmp_path / "b.tar.gz"), into)
    assert saved["parts"][0]["name"] == "state"
    secrets = into / "state" / "secrets.json"
    assert secrets.read_bytes() == b"{}" and secrets.stat().st_mode & 0o7777 == 0o755
    assert (into / "state" / "link").resolve() == secrets.resolve()


def test_read_backup_refuses_a_member_outside_and_writes_nothing_there(tmp_path, python):
    evil = tarfile.TarInfo("../evil")
    evil.size = 1
    into = tmp_path / "into"
    into.mkdir()
    with pytest.raises(backup.BackupError, match="cannot read"):
        backup.read_backup(_backup_file(tmp_path / "b.tar.gz", evil), into)
    assert not (tmp_path / "evil").exists()
