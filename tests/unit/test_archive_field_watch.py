"""The archive node announces fields a scan pass added or removed (fields_changed), looking at
its index every few seconds: the pure watch, and the node's look with a fake index."""
from __future__ import annotations

import pytest
from twisted.internet import defer, threads
from twisted.internet.task import Clock

from datasock.archive.db import IndexUnavailable
from datasock.archive.node import ArchiveNode, FieldWatch


def test_watch_reads_the_fields_only_when_the_stamp_moves():
    watch, reads = FieldWatch(), []

    def names(value):
        return lambda: reads.append(value) or frozenset(value)
    assert watch.look((0, None), names(set())) is False          # first look: remembered only
    assert watch.look((0, None), names({(1, "a")})) is False and reads == [set()]   # same stamp: not read
    assert watch.look((1, 10.0), names({(1, "a")})) is True      # a pass added a field
    assert watch.look((2, 20.0), names({(1, "a")})) is False     # a file more, the same fields
    assert watch.look((1, 30.0), names(set())) is True           # a file forgotten with its field
    assert len(reads) == 4


class FakeIndex:
    def __init__(self):
        self.files, self.names, self.down = 0, frozenset(), False

    def stamp(self):
        if self.down:
            raise IndexUnavailable("archive index sqlite:/x: database is locked")
        return self.files, float(self.files)

    def field_names(self):
        return self.names


@pytest.fixture
def node(monkeypatch):
    monkeypatch.setattr(threads, "deferToThread", lambda f, *a: defer.maybeDeferred(f, *a))
    node = ArchiveNode(FakeIndex())
    node.announced = 0

    def hook():
        node.announced += 1
    node._fields_changed_hook = hook
    return node


def test_the_node_announces_new_fields_every_interval(node):
    clock = Clock()
    node.started(lambda *a: None, clock=clock)                  # the first look, at once
    assert node.announced == 0
    node.index.files, node.index.names = 1, frozenset({(1, "a")})
    clock.advance(ArchiveNode.FIELD_WATCH_INTERVAL)
    assert node.announced == 1
    clock.advance(ArchiveNode.FIELD_WATCH_INTERVAL)
    assert node.announced == 1                                   # nothing new: no event
    node.index.down = True                                       # the index does not answer:
    clock.advance(ArchiveNode.FIELD_WATCH_INTERVAL)              # looked at again next time
    node.index.down, node.index.files, node.index.names = False, 2, frozenset({(1, "a"), (1, "b")})
    clock.advance(ArchiveNode.FIELD_WATCH_INTERVAL)
    assert node.announced == 2 and node._watching.running


def test_fields_changed_before_the_sdk_started_the_node_does_nothing():
    ArchiveNode(FakeIndex()).fields_changed()
