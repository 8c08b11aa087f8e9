"""A fake WAMP session and settings for shell tests driven by ``twisted.internet.task.Clock``."""
from __future__ import annotations

import types
from pathlib import Path

from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer

BASE = "org.example"


def fake_settings(home: Path | None = None, call_timeout: float = 30.0, **extra):
    """What the shells read from Settings, and nothing more."""
    return types.SimpleNamespace(home=home, base_uri=BASE, call_timeout=call_timeout,
                                 max_message_size=1 << 20, uri=lambda suffix: f"{BASE}.{suffix}", **extra)


class FakeSession:
    """Records what a shell does; ``calls`` holds each call's Deferred for the test to answer.

    ``answer`` maps a full procedure URI to a function of the call's args returning the
    result (or raising); procedures not in it stay unanswered until the test fires them.
    """

    def __init__(self, session_id: int = 1000, answer=None):
        self.session_id = session_id
        self.answer = dict(answer or {})
        self.registered: dict[str, object] = {}
        self.subscribed: dict[str, object] = {}
        self.published: list[tuple[str, tuple, dict]] = []
        self.calls: list[tuple[str, tuple, dict, defer.Deferred]] = []
        self.refuse_register: set[str] = set()

    def register(self, endpoint, uri, options=None):
        if uri in self.refuse_register:
            return defer.fail(ApplicationError("wamp.error.procedure_already_exists"))
        self.registered[uri] = endpoint
        return defer.succeed(None)

    def subscribe(self, handler, topic, options=None):
        self.subscribed[topic] = handler
        return defer.succeed(None)

    def publish(self, topic, *args, **kwargs):
        self.published.append((topic, args, kwargs))

    def call(self, uri, *args, **kwargs):
        if uri in self.answer:
            try:
                return defer.succeed(self.answer[uri](*args, **kwargs))
            except Exception as exc:
                return defer.fail(exc)
        d = defer.Deferred()
        self.calls.append((uri, args, kwargs, d))
        return d

    def pending(self, uri: str) -> list:
        return [c for c in self.calls if c[0] == uri and not c[3].called]

    def topics(self) -> list[str]:
        return [topic for topic, _, _ in self.published]


def details(**kwargs):
    return types.SimpleNamespace(**kwargs)
