"""
Who a request came from: the client's address, decided once for everything
that keys on it (the anonymous throttle, the sign-in limits, the admin's
lockout, the inside check of `/metrics` and `/ready`, the access log).

The connection's peer (`REMOTE_ADDR`) is the only address nobody can make up.
`X-Forwarded-For` is a list that every proxy on the way appends its peer to;
whatever a client sends in it arrives first. So an entry is believed only
when a proxy this deployment declares (`CLEAVE_TRUSTED_PROXIES`) wrote it:

- none (`0`, the default: `make run`, gunicorn reached directly): the peer,
  and `X-Forwarded-For` is ignored;
- a number of hops `N` (the gateway of a split is one): the N-th entry from
  the right, the one the outermost trusted proxy appended (the peer when the
  header holds fewer than N, as for another context's direct call);
- networks (`10.0.0.0/8,127.0.0.1/32`): from the peer leftwards, every
  address inside them is a proxy; the first one outside is the client.

A count trusts whoever connects; it suits processes that only the proxies
can reach (a ClusterIP Service, a compose network, a loopback port). Networks
also hold where clients may connect directly. An entry that is not an IP
address (garbage, or `host:port`) ends the walk at the proxy that passed it.

Written by hand: the rule is a dozen lines, and DRF's `NUM_PROXIES` and
django-axes' own parsing each know only their half of it.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings

FORWARDED_FOR = "HTTP_X_FORWARDED_FOR"


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def client_address(request: Any) -> str:
    """The address of the client of `request` (an HttpRequest or DRF's Request), as text."""
    meta = request.META
    peer = meta.get("REMOTE_ADDR", "") or ""
    trusted = getattr(settings, "CLEAVE_TRUSTED_PROXIES", 0)
    if not trusted:
        return peer
    # the entries in the order they were appended: the nearest hop last
    forwarded = [part.strip() for part in meta.get(FORWARDED_FOR, "").split(",") if part.strip()]
    if isinstance(trusted, int):
        if len(forwarded) < trusted:
            return peer
        found = _ip(forwarded[-trusted])
        return str(found) if found is not None else peer
    current = _ip(peer)
    if current is None:
        return peer
    for entry in reversed(forwarded):
        if not any(current in network for network in trusted):
            break
        previous = _ip(entry)
        if previous is None:
            break
        current = previous
    return str(current)
