"""Build the crossbar configuration from settings (pure: no I/O).

The roles are least-privilege: each may do exactly what its part in the
system needs. crossbar applies the most specific matching permission (exact
beats prefix), which is how data nodes are kept off the hub's own URIs that sit
under the ``consumer.`` prefix they otherwise own.

sisock's own components (docs/security.rst, "sisock's own components") join with
credentials published in sisock's source. With ``DATASOCK_SISOCK_LEGACY=1`` they
are accepted with the rights of datasock's equivalent roles; without it, on a
loopback router, they are let in under a role that may do nothing, so that the
router's watcher (:mod:`datasock.router.hints`) can say why and close them.
"""
from __future__ import annotations

from typing import Mapping

from .. import exposure, wire
from ..errors import InvalidArgument
from ..settings import Settings
from .guard import CREATE_AUTHENTICATOR, GUARD_CLASS, GUARD_ROLE, UNKNOWN_ROLE

_NONE = {"call": False, "register": False, "publish": False, "subscribe": False}

#: sisock's published WAMP-CRA users: authid -> (secret, the datasock role it gets).
#: ``server`` is what sisock's DataNodeServers join as (sisock/base.py; sisock's hub
#: used it too, but datasock runs its own hub: a sisock node gets a data node's rights
#: only); ``simonsobs`` is sisock's Grafana bridge (grafana_http_json.py), a reader.
SISOCK_USERS = {
    "server": ("Q5#x4%HCmgTsS!Pj", "datanode"),
    "simonsobs": ("yW4V2T^bPD&rGFwy", "consumer"),
}
#: the role sisock's users get while DATASOCK_SISOCK_LEGACY is off: no rights at all
REFUSED_ROLE = "sisock_refused"
#: the role of the router's embedded watcher that explains and closes such sessions
WATCH_ROLE = "router_watch"
WATCH_CLASS = "datasock.router.hints.RefusedSisockWatch"


def watches_refused(settings: Settings) -> bool:
    """Whether sisock's users are let in powerless to be told why (legacy off, loopback router)."""
    return not settings.sisock_legacy and exposure.is_loopback(settings.crossbar_listen)


def _perm(uri: str, match: str = "exact", disclose_caller: bool = False, **allowed: bool) -> dict:
    perm = {"uri": uri, "match": match, "allow": {**_NONE, **allowed},
            "disclose": {"caller": disclose_caller, "publisher": False}, "cache": True}
    return perm


def _check_roots_apart(settings: Settings) -> None:
    """OCS sessions are confined to ``<ocs_root>.``: it must not contain datasock's URIs."""
    base, ocs_root = settings.base_uri, settings.ocs_root
    for inner, outer in ((base, ocs_root), (ocs_root, base)):
        if inner == outer or inner.startswith(outer + "."):
            raise InvalidArgument(
                f"DATASOCK_OCS_ROOT {ocs_root!r} and DATASOCK_BASE_URI {base!r} overlap, which would "
                "let anonymous OCS sessions reach datasock's URIs; pick roots that are not prefixes "
                "of each other")


def roles(settings: Settings) -> list[dict]:
    _check_roots_apart(settings)
    base, ocs_root = settings.base_uri, settings.ocs_root
    hub_events = [f"{base}.{wire.NODE_ADDED}", f"{base}.{wire.NODE_SUBTRACTED}"]
    hub = [
        _perm(f"{base}.{wire.DATA_NODE_PREFIX}", "prefix", register=True),
        _perm(f"{base}.{wire.GET_DATA_NODE}", register=True),
        *[_perm(uri, publish=True) for uri in hub_events],
        _perm(f"{base}.{wire.HUB_PREFIX}", "prefix", publish=True),
        # the session meta API lets the hub check which registered nodes are still alive
        _perm(wire.META_SESSION_PREFIX, "prefix", call=True, subscribe=True),
    ]
    datanode = [
        _perm(f"{base}.{wire.CONSUMER_PREFIX}", "prefix", register=True, publish=True),
        _perm(f"{base}.{wire.GET_DATA_NODE}", call=True),
        *[_perm(uri, subscribe=True) for uri in hub_events],
        # the hub checks who is calling, so a node cannot add or remove in another's name
        _perm(f"{base}.{wire.DATA_NODE_PREFIX}", "prefix", disclose_caller=True, call=True),
        _perm(f"{base}.{wire.HUB_PREFIX}", "prefix", subscribe=True),
        # `datasock node ocs` reads OCS feeds over this authenticated session; reading is
        # all: it cannot call, register or publish anything of OCS's
        _perm(f"{ocs_root}.", "prefix", subscribe=True),
    ]
    consumer = [
        _perm(f"{base}.{wire.CONSUMER_PREFIX}", "prefix", call=True, subscribe=True),
        _perm(f"{base}.{wire.HUB_PREFIX}", "prefix", subscribe=True),
    ]
    # OCS's own roles, confined to its address root: agents (and clients on /ws) do
    # everything there; the HTTP caller bridge at /call only calls
    ocs_agent = [
        _perm(f"{ocs_root}.", "prefix", call=True, register=True, publish=True, subscribe=True),
    ]
    if settings.sisock_legacy:
        # sisock's OCS feed servers (data_feed_server.py) join this port anonymously and
        # serve consumer.<name>.get_fields/get_data, then announce themselves to the hub.
        # crossbar keeps one wildcard per text before "..", so "consumer..get_fields" and
        # "consumer..get_data" cannot both be listed: "consumer.." (exactly one name and one
        # procedure below consumer.) is the narrowest; it leaves out the hub's
        # consumer.get_data_node and its events, which have no second component.
        ocs_agent += [
            _perm(f"{base}.{wire.CONSUMER_PREFIX}.", "wildcard", register=True),
            # the hub checks who is calling, as for a data node
            _perm(f"{base}.{wire.NODE_ADD}", disclose_caller=True, call=True),
            _perm(f"{base}.{wire.NODE_SUBTRACT}", disclose_caller=True, call=True),
        ]
    ocs_controller = [
        _perm(f"{ocs_root}.", "prefix", call=True),
    ]
    result = [
        {"name": "hub", "permissions": hub},
        {"name": "datanode", "permissions": datanode},
        {"name": "consumer", "permissions": consumer},
        {"name": "iocs_agent", "permissions": ocs_agent},
        {"name": "iocs_controller", "permissions": ocs_controller},
        # an unknown authid is challenged under this role and cannot answer (guard.py)
        {"name": UNKNOWN_ROLE, "permissions": []},
        # the embedded component that makes refused registrations reveal nothing (guard.py)
        {"name": GUARD_ROLE, "permissions": []},
    ]
    if watches_refused(settings):
        result += [
            {"name": REFUSED_ROLE, "permissions": []},
            {"name": WATCH_ROLE, "permissions": [
                _perm("wamp.session.on_join", subscribe=True),
                _perm("wamp.session.kill", call=True),
            ]},
        ]
    return result


def wampcra_users(settings: Settings, secrets: Mapping[str, str]) -> dict:
    """Every WAMP-CRA principal of the TLS port.

    sisock's published users: with DATASOCK_SISOCK_LEGACY=1 they get their datasock
    roles and WAMP_USER may not name one of them (it would give the name a second
    secret); with it off, WAMP_USER may take such a name with a secret of its own
    (sisock's nodes then join with WAMP_USER/WAMP_SECRET set), and the names left over
    are let in powerless on a loopback router, to be told why (:func:`watches_refused`).
    """
    users = {user: {"secret": secret, "role": user} for user, secret in secrets.items()}
    for name in SISOCK_USERS:
        if name in users:
            raise InvalidArgument(f"datasock user {name!r} in secrets.json is a name of sisock's "
                                  "published users; rename it")
    if settings.wamp_user:
        if settings.wamp_user in users:
            raise InvalidArgument(f"WAMP_USER {settings.wamp_user!r} is one of datasock's own users "
                                  f"({', '.join(sorted(secrets))}); pick another name")
        if settings.sisock_legacy and settings.wamp_user in SISOCK_USERS:
            raise InvalidArgument(
                f"WAMP_USER {settings.wamp_user!r} is one of sisock's published users, which "
                "DATASOCK_SISOCK_LEGACY=1 already accepts with sisock's own secret: unset WAMP_USER "
                "and WAMP_SECRET, or set DATASOCK_SISOCK_LEGACY=0 to give this name your own secret")
        users[settings.wamp_user] = {"secret": settings.wamp_secret, "role": "datanode"}
    for name, (secret, role) in SISOCK_USERS.items():
        if settings.sisock_legacy:
            users[name] = {"secret": secret, "role": role}
        elif watches_refused(settings) and name not in users:
            users[name] = {"secret": secret, "role": REFUSED_ROLE}
    return users


def _websocket_options(settings: Settings) -> dict:
    return {
        "max_message_size": settings.max_message_size,
        "max_frame_size": settings.max_message_size,
        "auto_ping_interval": 10000,
        "auto_ping_timeout": 5000,
        "auto_ping_size": 12,
        "fail_by_drop": True,
    }


def crossbar_config(settings: Settings, secrets: Mapping[str, str], cert: str, key: str) -> dict:
    """The whole crossbar node configuration (config.json)."""
    tls_transport = {
        "type": "web",
        "endpoint": {"type": "tcp", "interface": settings.crossbar_listen, "port": settings.tls_port,
                     "tls": {"key": key, "certificate": cert}},
        "paths": {
            "ws": {"type": "websocket", "serializers": ["msgpack", "cbor", "json"],
                   "options": _websocket_options(settings),
                   # crossbar's static WAMP-CRA refuses an unknown authid differently from a
                   # wrong secret: datasock's authenticator refuses both alike (guard.py)
                   "auth": {"wampcra": {"type": "function", "create": CREATE_AUTHENTICATOR,
                                        "config": {"users": wampcra_users(settings, secrets)}}}},
        },
    }
    ocs_transport = {
        "type": "web",
        "endpoint": {"type": "tcp", "interface": settings.ocs_listen, "port": settings.ocs_port},
        "paths": {
            "ws": {"type": "websocket", "serializers": ["json", "msgpack", "cbor"],
                   "options": _websocket_options(settings),
                   "auth": {"anonymous": {"type": "static", "role": "iocs_agent"}}},
            # crossbar's HTTP caller bridge, which OCSClient speaks (POST {"procedure", "args", ...})
            "call": {"type": "caller", "realm": settings.realm, "role": "iocs_controller",
                     "options": {"debug": False}},
        },
    }
    router = {
        "type": "router",
        "realms": [{"name": settings.realm, "roles": roles(settings)}],
        "transports": [tls_transport, ocs_transport],
    }
    router["components"] = [{
        "type": "class", "classname": GUARD_CLASS, "realm": settings.realm, "role": GUARD_ROLE,
    }]
    if watches_refused(settings):
        router["components"].append({
            "type": "class", "classname": WATCH_CLASS, "realm": settings.realm, "role": WATCH_ROLE,
        })
    return {"version": 2, "controller": {}, "workers": [router]}
