"""Build the crossbar configuration from settings (pure: no I/O).

The roles are least-privilege: each may do exactly what its part in the
system needs. crossbar applies the most specific matching permission (exact
beats prefix), which is how data nodes are kept off the hub's own URIs that sit
under the ``consumer.`` prefix they otherwise own.
"""
from __future__ import annotations

from typing import Mapping

from ..errors import InvalidArgument
from ..settings import Settings

_NONE = {"call": False, "register": False, "publish": False, "subscribe": False}


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
    hub_events = [f"{base}.consumer.data_node_added", f"{base}.consumer.data_node_subtracted"]
    hub = [
        _perm(f"{base}.data_node.", "prefix", register=True),
        _perm(f"{base}.consumer.get_data_node", register=True),
        *[_perm(uri, publish=True) for uri in hub_events],
        _perm(f"{base}.hub.", "prefix", publish=True),
        # the session meta API lets the hub check which registered nodes are still alive
        _perm("wamp.session.", "prefix", call=True, subscribe=True),
    ]
    datanode = [
        _perm(f"{base}.consumer.", "prefix", register=True, publish=True),
        _perm(f"{base}.consumer.get_data_node", call=True),
        *[_perm(uri, subscribe=True) for uri in hub_events],
        # the hub checks who is calling, so a node cannot add or remove in another's name
        _perm(f"{base}.data_node.", "prefix", disclose_caller=True, call=True),
        _perm(f"{base}.hub.", "prefix", subscribe=True),
        # `datasock node ocs` reads OCS feeds over this authenticated session; reading is
        # all: it cannot call, register or publish anything of OCS's
        _perm(f"{ocs_root}.", "prefix", subscribe=True),
    ]
    consumer = [
        _perm(f"{base}.consumer.", "prefix", call=True, subscribe=True),
        _perm(f"{base}.hub.", "prefix", subscribe=True),
    ]
    # OCS's own roles, confined to its address root: agents (and clients on /ws) do
    # everything there; the HTTP caller bridge at /call only calls
    ocs_agent = [
        _perm(f"{ocs_root}.", "prefix", call=True, register=True, publish=True, subscribe=True),
    ]
    ocs_controller = [
        _perm(f"{ocs_root}.", "prefix", call=True),
    ]
    return [
        {"name": "hub", "permissions": hub},
        {"name": "datanode", "permissions": datanode},
        {"name": "consumer", "permissions": consumer},
        {"name": "iocs_agent", "permissions": ocs_agent},
        {"name": "iocs_controller", "permissions": ocs_controller},
    ]


def wampcra_users(settings: Settings, secrets: Mapping[str, str]) -> dict:
    users = {user: {"secret": secret, "role": user} for user, secret in secrets.items()}
    if settings.wamp_user:
        if settings.wamp_user in users:
            raise InvalidArgument(f"WAMP_USER {settings.wamp_user!r} is one of datasock's own users "
                                  f"({', '.join(sorted(secrets))}); pick another name")
        users[settings.wamp_user] = {"secret": settings.wamp_secret, "role": "datanode"}
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
                   "auth": {"wampcra": {"type": "static", "users": wampcra_users(settings, secrets)}}},
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
    return {
        "version": 2,
        "controller": {},
        "workers": [{
            "type": "router",
            "realms": [{"name": settings.realm, "roles": roles(settings)}],
            "transports": [tls_transport, ocs_transport],
        }],
    }
