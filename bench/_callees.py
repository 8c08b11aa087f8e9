"""The two callees of bench/rpc.py, each run in its own process.

``python bench/_callees.py sdk``  — a blocking datasock DataNodeServer, run with the SDK
                                    as any real node is (``datasock.datanodes.run``).
``python bench/_callees.py bare`` — a plain autobahn ApplicationSession, joined with
                                    WAMP-CRA as the ``datanode`` user, returning replies
                                    precomputed as Python lists (the floor for the same
                                    payload through the same router).
"""
from __future__ import annotations

import json
import sys

import numpy as np

import _payload as P


def run_sdk() -> None:
    from datasock.datanodes import DataNodeServer, Field, Samples, run

    t, v = P.arrays()

    class BenchNode(DataNodeServer):
        name = P.SDK_NODE
        description = "bench: 1e5 samples of one float field"

        def get_fields(self, start, end):
            return [Field(P.FIELD, P.TIMELINE, units="K", interval=1.0)]

        def get_data(self, fields, start, end):
            lo, hi = np.searchsorted(t, [start, end], side="left")
            return {P.TIMELINE: Samples(t[lo:hi], {P.FIELD: v[lo:hi]})}

    run(BenchNode())


def _reply(t: np.ndarray, v: np.ndarray) -> dict:
    return {"data": {P.FIELD: v.tolist()},
            "timeline": {P.TIMELINE: {"t": t.tolist(), "finalized_until": None}}}


def run_bare() -> None:
    from autobahn.twisted.wamp import ApplicationSession
    from autobahn.twisted.websocket import WampWebSocketClientFactory
    from autobahn.wamp import auth, types
    from autobahn.wamp.serializer import MsgPackSerializer
    from twisted.internet import reactor
    from twisted.internet.endpoints import SSL4ClientEndpoint
    from twisted.internet.ssl import Certificate, optionsForClientTLS

    from datasock import settings as settings_mod
    from datasock.downsample import downsample  # only to precompute the min_stride reply

    settings = settings_mod.load()
    secret = json.loads((settings.home / "secrets.json").read_text())["datanode"]
    pem = (settings.home / "tls" / "server.crt").read_bytes()

    t, v = P.arrays()
    full = _reply(t, v)
    n_day = int(np.searchsorted(t, P.T0 + P.DAY))
    td, cols = downsample(t[:n_day], {P.FIELD: v[:n_day]}, P.DAY_STRIDE)
    day = _reply(td, cols[P.FIELD])

    def get_data(field, start, end, min_stride=None):
        return day if min_stride else full

    class Bare(ApplicationSession):
        def onConnect(self):
            self.join(self.config.realm, ["wampcra"], "datanode")

        def onChallenge(self, challenge):
            key = secret
            if "salt" in challenge.extra:
                key = auth.derive_key(key, challenge.extra["salt"], challenge.extra["iterations"],
                                      challenge.extra["keylen"])
            return auth.compute_wcs(key, challenge.extra["challenge"])

        async def onJoin(self, details):
            await self.register(get_data, settings.uri(f"consumer.{P.BARE_NODE}.get_data"))
            print("bare callee registered", flush=True)

        def onDisconnect(self):
            if reactor.running:
                reactor.stop()

    config = types.ComponentConfig(realm=settings.realm)
    factory = WampWebSocketClientFactory(lambda: Bare(config), url=settings.router_url,
                                         serializers=[MsgPackSerializer()])
    factory.setProtocolOptions(maxMessagePayloadSize=settings.max_message_size,
                               maxFramePayloadSize=settings.max_message_size)
    tls = optionsForClientTLS(settings.crossbar_host, trustRoot=Certificate.loadPEM(pem))
    endpoint = SSL4ClientEndpoint(reactor, settings.crossbar_host, settings.tls_port, tls)

    def failed(failure):
        print(f"bare callee cannot connect: {failure.getErrorMessage()}", flush=True)
        reactor.stop()

    endpoint.connect(factory).addErrback(failed)
    reactor.run()


if __name__ == "__main__":
    {"sdk": run_sdk, "bare": run_bare}[sys.argv[1]]()
