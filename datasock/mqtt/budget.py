"""The MQTT adapter's input budgets (pure: no I/O, no clock of its own).

Incoming messages are admitted by token buckets, one per topic and one for all
topics together; a message over either is *shed*: counted, never stored, and
reported in one log line per interval. MQTT does not tell a subscriber which
client published a message, so the per-source budget is per topic (a publisher
normally owns its topics; one that sprays many topics meets the total budget and
the field limit). RPC requests in flight have their own budget (:class:`Slots`).
"""
from __future__ import annotations

import dataclasses


class TokenBucket:
    """``rate`` tokens a second, holding at most ``burst``; starts full."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float):
        self.rate, self.burst = float(rate), max(float(burst), 1.0)
        self.tokens, self.stamp = self.burst, now

    def refill(self, now: float) -> float:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        return self.tokens

    def full(self, now: float) -> bool:
        return self.refill(now) >= self.burst


@dataclasses.dataclass(frozen=True)
class RateSettings:
    """Messages a second admitted in all and per topic, and how many seconds of each a burst
    may use up at once. A rate of 0 means no limit."""
    total: float = 500.0
    per_topic: float = 100.0
    burst: float = 30.0
    #: topics whose buckets are remembered; beyond that idle (full) buckets are forgotten
    max_topics: int = 20000


#: a token short by no more than this (floating-point rounding of a refill) still counts
EPSILON = 1e-9

SHED_TOTAL = "total"
SHED_TOPIC = "topic"


class InputBudget:
    """Decides, message by message, whether an input message is taken or shed."""

    def __init__(self, settings: RateSettings, now: float):
        self.settings = settings
        self.total = (TokenBucket(settings.total, settings.total * settings.burst, now)
                      if settings.total > 0 else None)
        self._topics: dict[str, TokenBucket] = {}
        self.shed = {SHED_TOTAL: 0, SHED_TOPIC: 0}   # since the start
        self._reported = dict(self.shed)

    def admit(self, topic: str, now: float) -> str | None:
        """None when the message is taken (its tokens spent), else why it is shed."""
        bucket = None
        if self.settings.per_topic > 0:
            bucket = self._topics.get(topic)
            if bucket is None:
                if len(self._topics) >= self.settings.max_topics:
                    self._forget_idle(now)
                bucket = self._topics[topic] = TokenBucket(
                    self.settings.per_topic, self.settings.per_topic * self.settings.burst, now)
            if bucket.refill(now) < 1.0 - EPSILON:
                self.shed[SHED_TOPIC] += 1
                return SHED_TOPIC
        if self.total is not None:
            if self.total.refill(now) < 1.0 - EPSILON:
                self.shed[SHED_TOTAL] += 1
                return SHED_TOTAL
            self.total.tokens -= 1.0
        if bucket is not None:
            bucket.tokens -= 1.0
        return None

    def _forget_idle(self, now: float) -> None:
        """Drop the buckets that are full (their topics idle lately); if none is, drop all."""
        idle = [topic for topic, bucket in self._topics.items() if bucket.full(now)]
        for topic in idle:
            del self._topics[topic]
        if len(self._topics) >= self.settings.max_topics:
            self._topics.clear()

    @property
    def shed_total(self) -> int:
        return self.shed[SHED_TOTAL] + self.shed[SHED_TOPIC]

    def report(self) -> dict[str, int] | None:
        """What was shed since the last report, by reason, or None when nothing was."""
        since = {why: n - self._reported[why] for why, n in self.shed.items()}
        self._reported = dict(self.shed)
        return since if any(since.values()) else None


class Slots:
    """At most ``limit`` things at once (RPC calls in flight); 0 means no limit."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0

    def take(self) -> bool:
        if self.limit and self.used >= self.limit:
            return False
        self.used += 1
        return True

    def give(self) -> None:
        if self.used <= 0:
            raise RuntimeError("a slot given back that was never taken")
        self.used -= 1
