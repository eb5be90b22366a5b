"""Optional recording of each session's device: user agent, client address, last activity.

Off unless ``MONGO_SESSIONS_RECORD_DEVICES = True``, and then recorded only for
requests that pass through ``mongo_sessions.middleware.SessionMiddleware``. The
client address is personal data: ``MONGO_SESSIONS_DEVICE_ADDRESS`` says how
much of it is kept (``"truncate"``, the default, ``"hash"`` or ``"none"``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.sessions.backends.base import SessionBase
from django.http import HttpRequest
from django.utils.crypto import salted_hmac

from .clock import utc_now
from .conf import conf

USER_AGENT_FIELD = "user_agent"
ADDRESS_FIELD = "client_address"
LAST_ACTIVITY_FIELD = "last_activity"
DEVICE_FIELDS = (USER_AGENT_FIELD, ADDRESS_FIELD, LAST_ACTIVITY_FIELD)

# A User-Agent header is free text of any length: keep enough to tell browsers apart.
MAX_USER_AGENT_LENGTH = 300
ADDRESS_MODES = ("truncate", "hash", "none")
# Truncation keeps the network, not the host: an IPv4 /24 and an IPv6 /48, the
# prefixes commonly used to anonymise addresses in logs.
IPV4_PREFIX = 24
IPV6_PREFIX = 48
_HMAC_SALT = "mongo_sessions.devices.client_address"

# The attribute of a SessionStore that holds the request's device.
_DEVICE_ATTRIBUTE = "_mongo_sessions_device"


@dataclass(frozen=True)
class Device:
    """What is recorded of the request that used a session."""

    user_agent: str
    client_address: str | None


def client_address(remote_addr: Any, mode: str | None = None) -> str | None:
    """Return the address as ``MONGO_SESSIONS_DEVICE_ADDRESS`` says to keep it.

    ``"truncate"`` gives the network (``"203.0.113.0/24"``, ``"2001:db8:1::/48"``),
    ``"hash"`` a keyed hash (HMAC-SHA256 with ``SECRET_KEY``, 16 hex characters:
    equal addresses compare equal, and it cannot be reversed by trying all IPv4
    addresses without the key), ``"none"`` nothing. Not an IP address: None.
    """
    mode = conf.MONGO_SESSIONS_DEVICE_ADDRESS if mode is None else mode
    if mode == "none" or not remote_addr:
        return None
    try:
        address = ipaddress.ip_address(str(remote_addr).strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if mode == "hash":
        return salted_hmac(_HMAC_SALT, address.compressed, algorithm="sha256").hexdigest()[:16]
    prefix = IPV4_PREFIX if address.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def device_of(request: HttpRequest) -> Device | None:
    """Return the device of ``request``, or None when recording is off."""
    if not conf.MONGO_SESSIONS_RECORD_DEVICES:
        return None
    user_agent = str(request.META.get("HTTP_USER_AGENT", ""))[:MAX_USER_AGENT_LENGTH]
    return Device(
        user_agent=user_agent, client_address=client_address(request.META.get("REMOTE_ADDR"))
    )


def attach(session: SessionBase, request: HttpRequest) -> None:
    """Give ``session`` the device of ``request`` (no I/O; the middleware calls it)."""
    device = device_of(request)
    if device is not None:
        setattr(session, _DEVICE_ATTRIBUTE, device)


def _device(session: SessionBase) -> Device | None:
    if not conf.MONGO_SESSIONS_RECORD_DEVICES:
        return None
    device: Device | None = getattr(session, _DEVICE_ATTRIBUTE, None)
    return device


def stored_fields(session: SessionBase, now: datetime | None = None) -> dict[str, Any]:
    """Return the device fields a full write of ``session`` at ``now`` stores (none when off)."""
    device = _device(session)
    if device is None:
        return {}
    return {
        USER_AGENT_FIELD: device.user_agent,
        ADDRESS_FIELD: device.client_address,
        LAST_ACTIVITY_FIELD: now or utc_now(),
    }


def touch_fields(session: SessionBase) -> dict[str, Any]:
    """Return what a touch of ``session`` stores besides the expiry: the last activity."""
    if _device(session) is None:
        return {}
    return {LAST_ACTIVITY_FIELD: utc_now()}
