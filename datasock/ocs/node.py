"""``datasock node ocs``: live OCS feeds as one data node (the WAMP shell).

The node's datanode session on the TLS port serves sisock's procedures as any
data node does, and also holds one prefix subscription to ``<ocs_root>.``: every
feed of every agent arrives there (the datanode role may subscribe under the OCS
root, and do nothing else there). Parsing is :mod:`.feeds`, buffering :mod:`.store`.
"""
from __future__ import annotations

import sys
import time
from typing import Sequence

import txaio
from autobahn.wamp.types import SubscribeOptions
from twisted.internet import defer, task

from ..datanodes import DataNodeServer, NodeRunner
from ..errors import InvalidArgument
from ..settings import Settings
from .feeds import agent_of_topic, parse_feed_message
from .store import FeedStore, alive_field, alive_timeline

log = txaio.make_logger()


class OCSNode(DataNodeServer):
    """Serves what :class:`FeedStore` holds; fed by :meth:`on_feed`."""

    description = "live OCS feeds (fields <agent address>.feeds.<feed>.<field>)"

    def __init__(self, store: FeedStore, ocs_root: str, name: str = "ocs", clock=time.time):
        self.name = name
        self.store = store
        self.ocs_root = ocs_root
        self.clock = clock
        self._publish = None
        self._liveness = None
        self.bad_messages = 0

    # -- serving (thread pool; the store is thread-safe) ---------------------------------
    def get_fields(self, start, end):
        return self.store.fields()

    def get_data(self, fields, start, end):
        return self.store.data(fields, start, end, self.clock())

    # -- feeding (reactor thread) ---------------------------------------------------------
    def started(self, publish) -> None:
        self._publish = publish
        self._liveness = task.LoopingCall(self.check_liveness)
        self._liveness.start(1.0, now=False).addErrback(
            lambda failure: log.failure("liveness check stopped", failure=failure))

    def check_liveness(self) -> None:
        now = self.clock()
        for agent in self.store.check_liveness(now):
            log.warn("OCS agent {agent} silent for {s} s: marked dead", agent=agent,
                     s=self.store.heartbeat_timeout)
            self._send(alive_timeline(agent), [now], {alive_field(agent): [False]})

    def on_feed(self, *args, details=None, **kwargs) -> None:
        topic = getattr(details, "topic", None) or ""
        if agent_of_topic(topic, self.ocs_root) is None:
            return      # something else under the root, not a feed
        try:
            message = parse_feed_message(topic, args)
        except InvalidArgument as exc:
            self.bad_messages += 1
            log.warn("ignoring a publication: {exc}", exc=str(exc))
            return
        now = self.clock()
        problems = list(message.problems)
        if message.is_heartbeat:
            if not self.store.agents().get(message.agent_address):
                log.info("OCS agent {agent} alive", agent=message.agent_address)
            problems += self.store.heartbeat(message.agent_address, now)
            self._send(alive_timeline(message.agent_address), [now],
                       {alive_field(message.agent_address): [True]})
        for block in message.blocks:
            problems += self.store.add(block, now)
            self._send(block.timeline, block.t, {c.name: c.values for c in block.columns})
        for problem in problems:
            log.warn("OCS feed {feed}: {problem}", feed=message.feed_address, problem=problem)

    def _send(self, timeline, t, values) -> None:
        if self._publish is not None:
            self._publish(timeline, t, values)


class OCSRunner(NodeRunner):
    """A NodeRunner that also subscribes to every OCS feed once the node has joined."""

    @defer.inlineCallbacks
    def on_join(self, session, details):
        yield super().on_join(session, details)
        if self.session is not session:
            return      # stopped (another copy serves this name)
        yield session.subscribe(self.node.on_feed, f"{self.node.ocs_root}.",
                                options=SubscribeOptions(match="prefix", details=True))
        log.info("subscribed to every OCS feed under {root}.", root=self.node.ocs_root)


def main(argv: Sequence[str] | None = None) -> int:
    """``datasock node ocs``: serve every OCS feed until interrupted."""
    import argparse

    from .. import runtime
    from ..errors import EXIT_USAGE
    from . import load_config

    argparse.ArgumentParser(prog="datasock node ocs",
                            description="Serve every OCS feed under the OCS address root as fields."
                            ).parse_args(argv)

    def program(settings: Settings, config) -> None:
        store = FeedStore(config.keep, config.max_bytes, config.heartbeat_timeout)
        node = OCSNode(store, settings.ocs_root, config.node_name)

        async def run(reactor):
            runner = OCSRunner(node, settings)
            await runner.start()
            if runner.stopped_by_duplicate:
                raise SystemExit(EXIT_USAGE)

        runtime.react(run, prog="datasock node ocs")

    return runtime.run_program("datasock node ocs", program, lambda settings: load_config())


if __name__ == "__main__":
    sys.exit(main())
