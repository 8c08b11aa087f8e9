"""When a listening process counts as exposed, and which secrets it then refuses (pure, no I/O).

The rule (docs/security.rst, "Exposed processes"): a router or HTTP bridge that
listens on anything but a loopback address refuses to start unless every secret
that guards it was provisioned on purpose and is not a published or placeholder
value. On loopback nothing changes: a laptop stack still starts with no setup.
"""
from __future__ import annotations

import hashlib
import ipaddress
from typing import Mapping

#: shortest secret an exposed process accepts (``datasock init`` makes 43 characters)
MIN_SECRET_LENGTH = 16

#: SHA-256 of secrets that were published: sisock's data-node secrets were constants
#: in its source code. Kept as digests so no such value is spelled out here.
PUBLISHED_SECRET_DIGESTS = frozenset({
    "36083705bb52833e95bc7439e0380244ba74fdf942971933377a8d8f90ce42bc",  # sisock hub/server
    "c2618224cdb412480e9f165fdaa9be06cbd0d49ea61605a6d61e84f14508e5c9",  # sisock's Grafana bridge
})

#: words that mark a value as a placeholder someone forgot to replace
PLACEHOLDER_WORDS = ("change", "changeme", "default", "example", "placeholder", "secret",
                     "password", "passwd", "xxxx", "todo", "replace")


def is_loopback(address: str) -> bool:
    """True when ``address`` (an interface to listen on) accepts this computer only."""
    text = address.strip().strip("[]").lower()
    if text == "localhost":
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        # a host name other than localhost may resolve to anything: treat it as exposed
        return False


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def weak_secret_reason(secret: str | None) -> str | None:
    """Why ``secret`` must not guard an exposed port, or None when it may."""
    if not secret:
        return "it is missing"
    if _digest(secret) in PUBLISHED_SECRET_DIGESTS:
        return "it is a published default (sisock's)"
    if len(secret) < MIN_SECRET_LENGTH:
        return f"it is shorter than {MIN_SECRET_LENGTH} characters"
    lowered = secret.lower()
    for word in PLACEHOLDER_WORDS:
        if lowered.startswith(word) or lowered.endswith(word):
            return f"it looks like a placeholder ({word!r})"
    return None


def router_problems(listen: str, provisioned: Mapping[str, str] | None,
                    wamp_user: str | None, wamp_secret: str | None) -> list[str]:
    """What stops a router listening on ``listen`` from starting ([] when nothing does).

    ``provisioned`` is the users' secrets found in the state directory *before* the
    router would create any (None: there is no secrets.json yet).
    """
    if is_loopback(listen):
        return []
    problems = []
    if provisioned is None:
        problems.append("the state directory holds no secrets.json: provision it with "
                        "`datasock init` (or start the router once on 127.0.0.1) first; an "
                        "exposed router does not make its own secrets")
    else:
        for user in sorted(provisioned):
            reason = weak_secret_reason(provisioned[user])
            if reason:
                problems.append(f"the secret of user {user!r} in secrets.json is refused: {reason}")
    if wamp_user:
        reason = weak_secret_reason(wamp_secret)
        if reason:
            problems.append(f"WAMP_SECRET (of WAMP_USER {wamp_user!r}) is refused: {reason}")
    return problems


def sisock_legacy_problems(legacy: bool, exposed_ok: bool, tls_listen: str, ocs_listen: str) -> list[str]:
    """What stops a router with DATASOCK_SISOCK_LEGACY from starting ([] when nothing does).

    sisock's users have public secrets and its feed servers join anonymously, so the
    legacy mode is for a router only this computer reaches, unless the operator says
    otherwise with DATASOCK_SISOCK_LEGACY_EXPOSED=1.
    """
    if not legacy or exposed_ok:
        return []
    exposed = [f"{name}={address}" for name, address in
               (("CROSSBAR_LISTEN", tls_listen), ("CROSSBAR_OCS_LISTEN", ocs_listen))
               if not is_loopback(address)]
    if not exposed:
        return []
    return [f"DATASOCK_SISOCK_LEGACY=1 accepts sisock's users, whose secrets are published, and "
            f"sisock's anonymous feed servers, but the router listens beyond loopback "
            f"({', '.join(exposed)}): listen on 127.0.0.1, or set DATASOCK_SISOCK_LEGACY_EXPOSED=1 "
            "if everyone who can reach the router may join as sisock's users"]


def legacy_warning(base_uri: str, exposed: bool) -> str:
    """The line a router with DATASOCK_SISOCK_LEGACY=1 prints when it starts."""
    where = ("BEYOND LOOPBACK (DATASOCK_SISOCK_LEGACY_EXPOSED=1)" if exposed
             else "on loopback")
    return ("WARNING: DATASOCK_SISOCK_LEGACY=1: this router accepts sisock's published users "
            "'server' (data node rights) and 'simonsobs' (read only), whose secrets are public, "
            f"and lets anonymous OCS-port sessions serve {base_uri}.consumer.<name>.<procedure> and "
            f"call {base_uri}.data_node.add/subtract; it listens {where}. "
            "Move sisock's components to datasock's users and turn this off (docs/sisock.rst)")


def http_problems(listen: str, auth: str, secret: str | None) -> list[str]:
    """What stops an HTTP bridge listening on ``listen`` from starting ([] when nothing does)."""
    if is_loopback(listen):
        return []
    if auth == "none":
        return [f"DATASOCK_HTTP_LISTEN={listen} is not loopback but DATASOCK_HTTP_AUTH=none: "
                "set DATASOCK_HTTP_AUTH=token (or basic) and DATASOCK_HTTP_SECRET"]
    if not secret:
        # an exposed bridge takes no secret it made itself: its clients (Grafana) must be given it
        return [f"DATASOCK_HTTP_LISTEN={listen} is not loopback: set DATASOCK_HTTP_SECRET "
                "explicitly (datasock init writes one); the bridge does not generate one for an "
                "exposed port"]
    reason = weak_secret_reason(secret)
    if reason:
        return [f"DATASOCK_HTTP_SECRET is refused for a bridge on {listen}: {reason}"]
    return []


def refusal(component: str, problems: list[str]) -> str:
    """One message for all ``problems`` of ``component``."""
    return (f"{component} refuses to start beyond loopback: " + "; ".join(problems)
            + " (see docs/security.rst, 'Exposed processes')")
