"""What crosses between MQTT and datasock: topics, payloads, RPC requests (pure, no I/O).

Out: a live sample of ``<node>.<field>`` becomes ``<prefix>/<node>/<field>`` with
``{"t": <unix>, "value": <v>}``; ``$meta`` and ``$state`` describe the node.
In: a message on an input filter becomes one or more field values of the
MQTT-fed node. RPC: a JSON request names a procedure on the allow-list.
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Iterator, Mapping, Sequence

from .. import wire
from ..errors import InvalidArgument

#: a Unix time above this is taken to be in milliseconds (JavaScript's Date.now())
MILLISECONDS_ABOVE = 1e11
#: the unit of a message's ``t``, told by its magnitude: each unit's range covers the years
#: 1973 to 5138 (seconds below 1e11, milliseconds below 1e14, microseconds below 1e17,
#: nanoseconds above), so no present-day time is ambiguous
TIME_UNITS = ((MILLISECONDS_ABOVE, 1.0), (1e14, 1e-3), (1e17, 1e-6), (math.inf, 1e-9))
#: a message's ``t`` later than this many seconds after the adapter's clock is refused
#: (DATASOCK_MQTT_MAX_AHEAD): one bad time must not block a field's later values
MAX_AHEAD = 60.0
#: an input topic level that becomes part of a field name has at most this many characters
MAX_LEVEL = 128
#: a field name of the MQTT-fed node has at most this many characters
MAX_FIELD_NAME = 255
_FIELD_CHARS = re.compile(r"[^A-Za-z0-9_]+")
_RPC_ID = re.compile(r"[A-Za-z0-9_.\-]{1,128}")


class Malformed(InvalidArgument):
    """A message that cannot become a field value (counted and logged, never fatal)."""


# -- topics --------------------------------------------------------------------------------
def check_filter(pattern: str) -> str:
    """``pattern`` if it is a valid MQTT topic filter, else ValueError."""
    if not pattern:
        raise ValueError("empty topic filter")
    levels = pattern.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"'#' must be a whole last level: {pattern!r}")
        if "+" in level and level != "+":
            raise ValueError(f"'+' must be a whole level: {pattern!r}")
    return pattern


def filter_matches(pattern: str, topic: str) -> bool:
    """Whether ``topic`` matches the MQTT filter ``pattern`` (``+`` one level, ``#`` the rest)."""
    pat, top = pattern.split("/"), topic.split("/")
    for i, level in enumerate(pat):
        if level == "#":
            # '#' also matches the parent level itself, but not $-topics from a leading wildcard
            return not (i == 0 and topic.startswith("$"))
        if i >= len(top):
            return False
        if level == "+":
            if i == 0 and top[0].startswith("$"):
                return False
            continue
        if level != top[i]:
            return False
    return len(pat) == len(top)


def field_name(text: str) -> str:
    """A field name made of ``text``: runs of other characters become one ``_``.

    At most :data:`MAX_FIELD_NAME` characters; Malformed otherwise.
    """
    if len(text) > 4 * MAX_FIELD_NAME:  # never run the regex over a huge text
        raise Malformed(f"a field name of {len(text)} characters is too long "
                        f"(at most {MAX_FIELD_NAME}): {text[:40]!r}...")
    name = _FIELD_CHARS.sub("_", text).strip("_")
    if not name:
        raise Malformed(f"no field name can be made of {text[:40]!r}")
    if len(name) > MAX_FIELD_NAME:
        raise Malformed(f"field name {name[:40]!r}... has {len(name)} characters "
                        f"(at most {MAX_FIELD_NAME})")
    return name


def check_level(level: str, topic: str) -> str:
    """``level`` if it may be part of a field name: not empty, ``.`` or ``..`` (which would
    make two topics feed one field), at most :data:`MAX_LEVEL` characters."""
    if level in ("", ".", ".."):
        raise Malformed(f"topic {topic[:80]!r} has an empty, '.' or '..' level: not a field name")
    if len(level) > MAX_LEVEL:
        raise Malformed(f"topic {topic[:80]!r}... has a level of {len(level)} characters "
                        f"(at most {MAX_LEVEL})")
    return level


def input_field(pattern: str, topic: str) -> str:
    """The field a message on ``topic`` (matched by ``pattern``) feeds.

    The pattern's literal leading levels are dropped and the rest joined with
    ``_``: ``datasock/in/#`` maps ``datasock/in/lab/temp`` to ``lab_temp``, and
    ``/sensor/+/temperature`` maps ``/sensor/t1/temperature`` to ``t1_temperature``.
    A pattern without wildcards names the field after the topic's last level.
    Every level that goes into the name must pass :func:`check_level`.
    """
    fixed = 0
    for level in pattern.split("/"):
        if level in ("+", "#"):
            break
        fixed += 1
    levels = topic.split("/")
    rest = levels[fixed:]
    if fixed == len(pattern.split("/")) or not rest:
        rest = [levels[-1]]
    return field_name("_".join(check_level(level, topic) for level in rest))


_NOT_IN_A_LEVEL = re.compile(r"[/+#\x00]")


def topic_level(name: str) -> str:
    """``name`` made safe as one topic level: ``/``, ``+``, ``#`` and NUL become ``_``."""
    return _NOT_IN_A_LEVEL.sub("_", name) or "_"


def sample_topic(prefix: str, node: str, field: str) -> str:
    return f"{prefix}/{topic_level(node)}/{topic_level(field)}"


def meta_topic(prefix: str, node: str) -> str:
    return f"{prefix}/{node}/$meta"


def state_topic(prefix: str, node: str) -> str:
    return f"{prefix}/{node}/$state"


def adapter_state_topic(prefix: str) -> str:
    """The adapter's own online/offline topic (its MQTT last will)."""
    return f"{prefix}/$adapter/$state"


def adapter_stats_topic(prefix: str) -> str:
    return f"{prefix}/$adapter/stats"


def rpc_request_topic(prefix: str) -> str:
    return f"{prefix}/rpc/request"


def rpc_response_topic(prefix: str, request_id: str) -> str:
    return f"{prefix}/rpc/response/{request_id}"


def rpc_reply_prefix(prefix: str) -> str:
    """Every RPC answer goes under this: MQTT 5 response topics must too."""
    return f"{prefix}/rpc/response/"


#: characters an MQTT 5 response topic may have at most
MAX_RESPONSE_TOPIC = 256


def check_response_topic(prefix: str, topic: str) -> str | None:
    """None if the adapter may publish a reply on ``topic``, else why not.

    An MQTT 5 response topic is chosen by whoever sends the request, so it must be a
    plain topic (no wildcard, NUL or empty level) under :func:`rpc_reply_prefix`: the
    adapter never publishes a reply where it would pose as a data topic of datasock,
    another application's topic, or a retained ``$``-topic.
    """
    head = rpc_reply_prefix(prefix)
    if not isinstance(topic, str) or len(topic) > MAX_RESPONSE_TOPIC:
        return f"the response topic must be a topic of at most {MAX_RESPONSE_TOPIC} characters"
    if not topic.startswith(head) or len(topic) == len(head):
        return f"the response topic must be under {head} (got {topic[:80]!r})"
    if any(c in topic for c in "+#\x00") or "" in topic[len(head):].split("/"):
        return f"the response topic must have no wildcard and no empty level (got {topic[:80]!r})"
    return None


def dumps(value: Any) -> bytes:
    """JSON for MQTT payloads; NaN and infinities become null (JSON has neither)."""
    import orjson  # datasock[mqtt]; not at the top: `datasock config` checks topic filters without it

    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


# -- out: live samples ------------------------------------------------------------------------
def node_of_samples_topic(uri: str, base_uri: str) -> str | None:
    """The node name in ``<base>.consumer.<node>.samples`` (:func:`wire.samples_topic`), or None."""
    head = base_uri + "."
    return wire.node_of_samples_topic(uri[len(head):]) if uri.startswith(head) else None


def sample_messages(prefix: str, node: str, event: Any) -> Iterator[tuple[str, bytes]]:
    """``(topic, payload)`` per sample per field of a live-sample event.

    The event is what a node publishes: ``{"timeline", "t": [...], "data": {field: [...]}}``.
    A malformed event raises Malformed before anything is yielded.
    """
    if not isinstance(event, Mapping):
        raise Malformed(f"live event from {node!r} is not a mapping")
    times, data = event.get("t"), event.get("data")
    if not isinstance(times, (list, tuple)) or not isinstance(data, Mapping):
        raise Malformed(f"live event from {node!r} lacks 't' list or 'data' mapping")
    columns = []
    for field, values in data.items():
        if not isinstance(values, (list, tuple)) or len(values) != len(times):
            raise Malformed(f"live event from {node!r}: field {field!r} does not match 't'")
        columns.append((sample_topic(prefix, node, str(field)), values))
    for i, t in enumerate(times):
        for topic, values in columns:
            yield topic, dumps({"t": t, "value": values[i]})


def meta_payload(node: str, description: str, fields_reply: Any) -> bytes:
    """``$meta`` from a node's description and its get_fields reply ``[fields, timelines]``."""
    fields = fields_reply[0] if isinstance(fields_reply, (list, tuple)) and fields_reply else {}
    timelines = fields_reply[1] if isinstance(fields_reply, (list, tuple)) and len(fields_reply) > 1 else {}
    out = {}
    for name, meta in sorted((fields or {}).items()):
        meta = meta if isinstance(meta, Mapping) else {}
        timeline = (timelines or {}).get(meta.get("timeline"), {})
        out[name] = {"units": meta.get("units", ""), "description": meta.get("description", ""),
                     "type": meta.get("type", "number"), "timeline": meta.get("timeline"),
                     "interval": timeline.get("interval") if isinstance(timeline, Mapping) else None}
    return dumps({"node": node, "description": description, "fields": out})


# -- in: payloads to field values ---------------------------------------------------------------
def _number(value: Any, where: str) -> float:
    """A finite float from a JSON number or boolean (booleans become 0/1)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        value = float(value)
        if math.isfinite(value):
            return value
        raise Malformed(f"{where}: {value!r} is not finite")
    if isinstance(value, str):
        return _text_value(value, where)
    raise Malformed(f"{where}: {value!r} is not a number or boolean")


def _text_value(text: str, where: str) -> float:
    word = text.strip().lower()
    if word in ("true", "on"):
        return 1.0
    if word in ("false", "off"):
        return 0.0
    try:
        value = float(word)
    except ValueError:
        raise Malformed(f"{where}: {text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise Malformed(f"{where}: {text[:40]!r} is not finite")
    return value


def unix_seconds(t: float) -> float:
    """A Unix time in seconds from one in seconds, milliseconds, microseconds or
    nanoseconds, told apart by magnitude (:data:`TIME_UNITS`)."""
    for below, scale in TIME_UNITS:
        if abs(t) < below:
            return t * scale
    raise AssertionError("unreachable: the last unit has no upper bound")  # pragma: no cover


def check_ahead(t: float, now: float, max_ahead: float = MAX_AHEAD) -> float:
    """``t`` unless it is more than ``max_ahead`` seconds after ``now`` (Malformed)."""
    if t > now + max_ahead:
        raise Malformed(f"'t' {t!r} is {t - now:.0f} s after this computer's clock (at most "
                        f"{max_ahead:g} s ahead are accepted, DATASOCK_MQTT_MAX_AHEAD)")
    return t


def _time(value: Any, now: float, max_ahead: float = MAX_AHEAD) -> float:
    if value is None:
        return now
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Malformed(f"'t' must be a Unix time in seconds, got {value!r}")
    return check_ahead(unix_seconds(float(value)), now, max_ahead)


#: values one input message may hold at most (a JSON object's keys)
MAX_VALUES = 1000


def parse_payload(field: str, payload: bytes, now: float, max_ahead: float = MAX_AHEAD,
                  max_values: int = MAX_VALUES) -> list[tuple[str, float, float]]:
    """``[(field, t, value), ...]`` from one MQTT message for ``field``.

    Accepted: ``{"value": v, "t": t}`` (``t`` optional, in seconds, milliseconds,
    microseconds or nanoseconds told apart by magnitude, and at most ``max_ahead``
    seconds after ``now``),
    a bare JSON number or boolean, a number as text, ``true``/``false``/``on``/``off``,
    and a JSON object of several values (``{"temp": 4.2, "p": 1e-6, "t": ...}``, each
    becoming ``<field>_<key>``). Booleans are stored as 0/1 so Grafana can draw them.
    Anything else raises :class:`Malformed`.
    """
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed(f"{field}: payload is not UTF-8 text") from None
    if not text.strip():
        raise Malformed(f"{field}: empty payload")
    import orjson

    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return [(field, now, _text_value(text, field))]
    if isinstance(doc, Mapping):
        t = _time(doc.get("t", doc.get("time")), now, max_ahead)
        if "value" in doc:
            return [(field, t, _number(doc["value"], field))]
        values = []
        for key, value in doc.items():
            if key in ("t", "time") or isinstance(value, (str, list, dict)) or value is None:
                continue  # labels such as tracker_dcs's "sensor"/"measurement" are not values
            if len(values) >= max_values:
                raise Malformed(f"{field}: more than {max_values} values in one message "
                                "(DATASOCK_MQTT_MAX_VALUES)")
            values.append((field_name(f"{field}_{key}"), t, _number(value, f"{field}.{key}")))
        if not values:
            raise Malformed(f"{field}: JSON object holds no number or boolean")
        return values
    if isinstance(doc, str):
        return [(field, now, _text_value(doc, field))]
    if isinstance(doc, (list, type(None))):
        raise Malformed(f"{field}: a JSON {'list' if isinstance(doc, list) else 'null'} is not a value")
    return [(field, now, _number(doc, field))]


# -- RPC -------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RpcRequest:
    procedure: str  # suffix under the base URI
    args: list
    kwargs: dict
    id: str | None


def parse_rpc_request(payload: bytes, base_uri: str, allow: Sequence[str]) -> RpcRequest:
    """Validate an RPC request; InvalidArgument says what is wrong (sent back as the error)."""
    import orjson

    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise InvalidArgument("request is not JSON") from None
    if not isinstance(doc, Mapping):
        raise InvalidArgument("request must be a JSON object")
    request_id = doc.get("id")
    if request_id is not None:
        if isinstance(request_id, bool) or not isinstance(request_id, (str, int)):
            raise InvalidArgument("'id' must be a string or an integer")
        request_id = str(request_id)
        if not _RPC_ID.fullmatch(request_id):
            raise InvalidArgument("'id' may hold only letters, digits, '_', '.', '-' (1 to 128)")
    procedure = doc.get("procedure")
    if not isinstance(procedure, str) or not procedure:
        raise InvalidArgument("'procedure' must be a non-empty string")
    if procedure.startswith(base_uri + "."):
        procedure = procedure[len(base_uri) + 1:]
    args = doc.get("args", [])
    kwargs = doc.get("kwargs", {})
    if not isinstance(args, list):
        raise InvalidArgument("'args' must be a list")
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise InvalidArgument("'kwargs' must be an object")
    if not rpc_allowed(procedure, allow):
        raise InvalidArgument(f"procedure {procedure!r} is not on the allow-list "
                              "(DATASOCK_MQTT_RPC_ALLOW)")
    return RpcRequest(procedure, args, dict(kwargs), request_id)


def rpc_allowed(procedure: str, allow: Sequence[str]) -> bool:
    """Whether ``procedure`` matches an allow-list entry; ``*`` never spans a ``.``."""
    if any(c in procedure for c in "*?[]#"):
        return False
    for pattern in allow:
        regex = "".join("[^.]*" if c == "*" else "[^.]" if c == "?" else re.escape(c)
                        for c in pattern)
        if re.fullmatch(regex, procedure):
            return True
    return False


def rpc_request_id(payload: bytes) -> str | None:
    """The request's id when it is usable for a response topic, even in a bad request."""
    import orjson

    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    value = doc.get("id") if isinstance(doc, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    value = str(value)
    return value if _RPC_ID.fullmatch(value) else None


def rpc_result(request_id: str | None, result: Any) -> bytes:
    return dumps({"id": request_id, "result": result})


def rpc_error(request_id: str | None, message: str) -> bytes:
    return dumps({"id": request_id, "error": message})


# -- malformed-message bookkeeping ----------------------------------------------------------------
class Counters:
    """How many input messages were taken and refused, and whether to log the next refusal.

    The first few refusals are logged, then one in ``every``: a flood of bad
    messages must not flood the log too.
    """

    def __init__(self, log_first: int = 10, every: int = 1000):
        self.log_first, self.every = log_first, every
        self.accepted = 0
        self.malformed = 0
        self.rpc_calls = 0
        self.rpc_errors = 0
        self.published = 0
        self.dropped = 0  # live samples refused by a full send queue while the broker was away
        self.polls = 0        # get_data polls of nodes that publish no live samples
        self.poll_errors = 0  # of which failed or timed out
        self.polled = 0       # MQTT messages published from polls
        self.refused_values = 0  # values of accepted messages that could not be stored
        self.shed = 0         # input messages over a rate budget (DATASOCK_MQTT_RATE*)
        self.rpc_busy = 0     # RPC requests answered "busy" (DATASOCK_MQTT_RPC_CONCURRENCY)
        self.live_dropped = 0  # fed values not published live on WAMP (the queue was full)

    def refuse(self) -> bool:
        """Count one refused message; True when it should be logged."""
        self.malformed += 1
        return self.malformed <= self.log_first or self.malformed % self.every == 0

    def as_dict(self) -> dict:
        return {"accepted": self.accepted, "malformed": self.malformed, "published": self.published,
                "rpc_calls": self.rpc_calls, "rpc_errors": self.rpc_errors, "dropped": self.dropped,
                "polls": self.polls, "poll_errors": self.poll_errors, "polled": self.polled,
                "refused_values": self.refused_values, "shed": self.shed,
                "rpc_busy": self.rpc_busy, "live_dropped": self.live_dropped}
