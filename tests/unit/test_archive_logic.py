"""The archive's pure parts: schema text, file-state decisions, joining and trimming, the cache."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from datasock.archive import ArchiveConfig, load_config, schema
from datasock.archive.cache import DecodedCache
from datasock.archive.hkfile import Block, HKFile
from datasock.archive.node import join_pieces, trim
from datasock.errors import InvalidArgument


def known(size=100, mtime=10.0, state=schema.OK, scanned_at=20.0):
    return schema.KnownFile(1, "/a.g3", size, mtime, state, scanned_at)


def test_decide_new_grown_changed_unchanged():
    assert schema.decide(None, 10, 1.0, 100, 600) == schema.NEW
    assert schema.decide(known(), 150, 11.0, 100, 600) == schema.GROWN
    assert schema.decide(known(), 50, 11.0, 100, 600) == schema.CHANGED
    assert schema.decide(known(), 100, 12.0, 100, 600) == schema.CHANGED  # rewritten, same size
    assert schema.decide(known(), 100, 10.0, 10_000, 600) == schema.UNCHANGED


@pytest.mark.parametrize("state", [schema.PARTIAL, schema.CORRUPT])
def test_unreadable_files_are_retried_after_the_delay(state):
    k = known(state=state, scanned_at=1000.0)
    assert schema.decide(k, 100, 10.0, 1000.0 + 599, 600) == schema.UNCHANGED
    assert schema.decide(k, 100, 10.0, 1000.0 + 600, 600) == schema.RETRY


@given(st.integers(0, 10**9), st.floats(0, 2e9), st.integers(0, 10**9), st.floats(0, 2e9),
       st.sampled_from([schema.OK, schema.PARTIAL, schema.CORRUPT]))
def test_an_unchanged_ok_file_is_never_read_again(size, mtime, size2, mtime2, state):
    k = known(size, mtime, state, 0.0)
    action = schema.decide(k, size2, mtime2, 1.0, 600)
    if (size, mtime) == (size2, mtime2):
        assert action == schema.UNCHANGED
    else:
        assert action in (schema.GROWN, schema.CHANGED)


def test_state_after_read():
    assert schema.state_after_read(10, None) == schema.OK
    assert schema.state_after_read(10, "RuntimeError: short read") == schema.PARTIAL
    assert schema.state_after_read(0, "RuntimeError: garbage") == schema.CORRUPT


def test_render_fills_placeholders_per_dialect():
    sql = "INSERT INTO t (a, b) VALUES (?, ?)"
    assert schema.render(sql, "sqlite") == sql
    assert schema.render(sql, "mysql") == "INSERT INTO t (a, b) VALUES (%s, %s)"
    assert "AUTO_INCREMENT" in schema.render(schema.MIGRATIONS[0][0], "mysql")
    assert "AUTOINCREMENT" in schema.render(schema.MIGRATIONS[0][0], "sqlite")


def test_pending_migrations():
    assert [v for v, _ in schema.pending_migrations(0)] == list(range(1, schema.SCHEMA_VERSION + 1))
    assert schema.pending_migrations(schema.SCHEMA_VERSION) == []
    with pytest.raises(InvalidArgument, match="newer"):
        schema.pending_migrations(schema.SCHEMA_VERSION + 1)


def test_range_lookups_are_indexed():
    statements = " ".join(schema.MIGRATIONS[0])
    assert "ds_files_range ON ds_files (t_end, t_start)" in statements
    assert "ds_fields_range ON ds_fields (t_end, t_start)" in statements
    assert "t_end >= ? AND t_start < ?" in schema.FILES_IN_RANGE


@pytest.mark.parametrize("name", ["", "a-b", "x; DROP TABLE y", "a" * 65])
def test_database_names_are_checked(name):
    with pytest.raises(InvalidArgument, match="SQL_DB"):
        schema.check_database_name(name)


def test_files_to_forget():
    assert schema.files_to_forget({"a", "b"}, ["b", "c"]) == {"a"}


def test_config_defaults_live_under_datasock_home(tmp_path):
    config = load_config({"DATASOCK_HOME": str(tmp_path)})
    assert isinstance(config, ArchiveConfig)
    assert config.data_directory == tmp_path / "archive"
    assert config.sqlite_path == tmp_path / "archive.sqlite"
    assert config.sql_host is None and config.scan_interval == 60.0
    with pytest.raises(InvalidArgument, match="SCAN_INTERVAL"):
        load_config({"DATASOCK_HOME": str(tmp_path), "SCAN_INTERVAL": "-1"})


def test_trim_is_half_open_and_handles_unsorted_times():
    t = np.arange(10.0)
    tt, cols = trim(t, {"x": t * 2}, 2, 5)
    assert tt.tolist() == [2, 3, 4] and cols["x"].tolist() == [4, 6, 8]
    u = np.array([5.0, 1.0, 3.0, 2.0])
    tt, cols = trim(u, {"x": u}, 2, 4)
    assert sorted(tt.tolist()) == [2.0, 3.0]


def test_join_pieces_orders_and_fills_missing_fields():
    a = (np.array([10.0, 11.0]), {"x": np.array([1.0, 2.0]), "s": np.array(["a", "b"], dtype=object)})
    b = (np.array([0.0, 1.0]), {"x": np.array([3.0, 4.0])})
    t, data = join_pieces([a, b, (np.empty(0), {})], ["x", "s", "nosuch"])
    assert t.tolist() == [0.0, 1.0, 10.0, 11.0]
    assert data["x"].tolist() == [3.0, 4.0, 1.0, 2.0]
    assert data["s"].tolist() == [None, None, "a", "b"]
    assert "nosuch" not in data
    t, data = join_pieces([], ["x"])
    assert len(t) == 0 and data == {}


def decoded(n, error=None):
    t = np.arange(float(n))
    return HKFile([Block("p", "b", {"x": "number"}, t, {"p.x": t})], 1, error, {2})


def test_cache_hits_invalidates_on_change_and_stays_bounded():
    cache = DecodedCache(max_bytes=decoded(100).nbytes * 2)
    loads = []

    def load(n):
        def do(fields):
            loads.append(fields)
            return decoded(n)
        return do
    x = frozenset({"p.x"})
    first = cache.get("a", (1, 1), x, load(100))
    assert cache.get("a", (1, 1), x, load(100)) is first and loads == [x]
    assert cache.get("a", (2, 2), x, load(100)) is not first and len(loads) == 2  # changed file
    cache.get("b", (1, 1), x, load(100))
    cache.get("c", (1, 1), x, load(100))          # evicts a, the least recently used
    assert len(cache) == 2 and cache.nbytes <= cache.max_bytes
    cache.get("a", (2, 2), x, load(100))
    assert len(loads) == 5
    cache.get("huge", (1, 1), x, load(10_000))    # larger than the whole cache: not kept
    assert "huge" not in cache._entries


def test_cache_decodes_more_fields_on_demand():
    cache = DecodedCache(1 << 20)
    loads = []

    def load(fields):
        loads.append(fields)
        return decoded(10)
    cache.get("a", (1, 1), frozenset({"x"}), load)
    cache.get("a", (1, 1), frozenset({"y"}), load)     # y not decoded yet: read with x and y
    assert loads == [frozenset({"x"}), frozenset({"x", "y"})]
    cache.get("a", (1, 1), frozenset({"x", "y"}), load)
    cache.get("a", (1, 1), frozenset({"y"}), load)
    assert len(loads) == 2 and cache.hits == 2
    cache.get("a", (1, 1), None, load)                  # everything
    cache.get("a", (1, 1), frozenset({"z"}), load)
    assert loads[2:] == [None] and cache.hits == 3


def test_cache_does_not_keep_incomplete_files():
    cache = DecodedCache(1 << 20)
    cache.get("a", (1, 1), None, lambda fields: decoded(10, error="short read"))
    assert len(cache) == 0


@given(st.lists(st.integers(1, 20), min_size=1, max_size=6), st.randoms())
def test_join_pieces_in_any_order_gives_the_time_ordered_whole(sizes, rnd):
    edges = np.cumsum([0] + sizes)
    t = np.arange(float(edges[-1]))
    pieces = [(t[a:b], {"x": t[a:b] * 3}) for a, b in zip(edges[:-1], edges[1:])]
    rnd.shuffle(pieces)
    joined_t, data = join_pieces(pieces, ["x"])
    assert joined_t.tolist() == t.tolist() and data["x"].tolist() == (t * 3).tolist()
