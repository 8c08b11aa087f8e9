"""Plain autobahn sessions for tests, driven from pytest through crochet."""
from __future__ import annotations

import crochet
from autobahn.twisted.wamp import ApplicationSession
from autobahn.twisted.websocket import WampWebSocketClientFactory
from autobahn.wamp import auth, types
from autobahn.wamp.serializer import JsonSerializer, MsgPackSerializer
from twisted.internet import defer, reactor
from twisted.internet.endpoints import SSL4ClientEndpoint, TCP4ClientEndpoint

from datasock.client import tls_options


class TestSession(ApplicationSession):
    """Joins with WAMP-CRA (when given credentials) or anonymously; records events."""

    def __init__(self, config, authid, secret, joined):
        super().__init__(config)
        self._authid, self._secret, self.joined = authid, secret, joined
        self.events: list = []
        self.leave_details = None

    def onConnect(self):
        if self._authid is None:
            self.join(self.config.realm, ["anonymous"])
        else:
            self.join(self.config.realm, ["wampcra"], self._authid)

    def onChallenge(self, challenge):
        return auth.compute_wcs(self._secret, challenge.extra["challenge"])

    def onJoin(self, details):
        self.joined.callback(self)

    def onLeave(self, details):
        self.leave_details = details
        if not self.joined.called:
            self.joined.errback(RuntimeError(f"{details.reason}: {details.message}"))
        self.disconnect()


@crochet.wait_for(timeout=30)
def connect(settings, authid=None, secret=None, ocs=False, serializer="msgpack"):
    joined = defer.Deferred()
    config = types.ComponentConfig(realm=settings.realm)
    ser = MsgPackSerializer() if serializer == "msgpack" else JsonSerializer()
    url = settings.ocs_url if ocs else settings.router_url
    factory = WampWebSocketClientFactory(lambda: TestSession(config, authid, secret, joined), url=url,
                                         serializers=[ser])
    factory.setProtocolOptions(maxMessagePayloadSize=settings.max_message_size,
                               maxFramePayloadSize=settings.max_message_size)
    if ocs:
        endpoint = TCP4ClientEndpoint(reactor, settings.crossbar_host, settings.ocs_port)
    else:
        endpoint = SSL4ClientEndpoint(reactor, settings.crossbar_host, settings.tls_port,
                                      tls_options(settings))
    endpoint.connect(factory).addErrback(joined.errback)
    return joined


@crochet.wait_for(timeout=30)
def call(session, uri, *args, **kwargs):
    return session.call(uri, *args, **kwargs)


@crochet.wait_for(timeout=30)
def register(session, fn, uri, **kwargs):
    return session.register(fn, uri, **kwargs)


@crochet.wait_for(timeout=30)
def publish(session, uri, *args):
    return session.publish(uri, *args, options=types.PublishOptions(acknowledge=True))


@crochet.wait_for(timeout=30)
def subscribe(session, uri):
    return session.subscribe(lambda *a, **kw: session.events.append((uri, a, kw)), uri)


@crochet.wait_for(timeout=30)
def leave(session):
    if session.is_attached():
        session.leave()
