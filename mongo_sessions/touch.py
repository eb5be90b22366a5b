"""Sliding expiry without a write per request: ``MONGO_SESSIONS_TOUCH_AFTER`` (seconds).

A save of a session that was loaded and not modified (what
``SESSION_SAVE_EVERY_REQUEST`` does on every request, and what
``mongo_sessions.middleware.SessionMiddleware`` does for a read-only request)
is a *touch*: when the expiry it would store is at least ``TOUCH_AFTER`` seconds
later than the stored one (the last extension is that old), one
``update`` sets ``expire_date`` alone (plus ``last_activity`` when devices are
recorded), whatever the size of the data; otherwise nothing is written. A
session whose lifetime is shorter than twice ``TOUCH_AFTER`` is touched once
half of it has passed, so that an active session never runs out.

A session is modified, and saved in full, when Django says so (``modified``)
or when its data changed in place (a list in it appended to): the data's
serialization at load and at save are compared.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.sessions.backends.base import SessionBase, UpdateError

from . import devices
from .clock import utc_now
from .conf import conf
from .connection import aget_collection, get_collection
from .operation import mongo_operation

EXPIRY_FIELD = "expire_date"
# The attributes a SessionStore gets when it loads a session while the rule is on.
_STORED_EXPIRY = "_mongo_sessions_stored_expiry"
_FINGERPRINT = "_mongo_sessions_fingerprint"
_OUTCOME = "_mongo_sessions_touch"

# Outcomes of the rule for one save, kept on the store for the middleware.
SKIPPED = "skipped"  # within the window: nothing written
EXTENDED = "extended"  # the expiry was moved


@dataclass(frozen=True)
class _Touch:
    """A touch to send: the new expiry and the update that stores it."""

    expire_date: datetime
    update: dict[str, Any]


def _fingerprint(session: SessionBase, data: dict[str, Any]) -> bytes | None:
    try:
        serialized = session.serializer().dumps(data)
    except Exception:
        return None  # unserializable: the full save reports it
    if isinstance(serialized, str):
        serialized = serialized.encode()
    return hashlib.blake2b(serialized, digest_size=16).digest()


def remember_loaded(
    session: SessionBase, document: dict[str, Any] | None, data: dict[str, Any]
) -> None:
    """Keep what the rule needs from a document just loaded (no-op when the rule is off)."""
    if conf.MONGO_SESSIONS_TOUCH_AFTER is None or document is None:
        return
    expiry = document.get(EXPIRY_FIELD)
    if isinstance(expiry, datetime):
        setattr(session, _STORED_EXPIRY, expiry)
        setattr(session, _FINGERPRINT, _fingerprint(session, data))


def _plan(session: SessionBase, data: dict[str, Any]) -> _Touch | str | None:
    """Return None for a full save, SKIPPED for no write, or the touch to send."""
    touch_after = conf.MONGO_SESSIONS_TOUCH_AFTER
    if touch_after is None or session.modified:
        return None
    stored: datetime | None = getattr(session, _STORED_EXPIRY, None)
    if stored is None:
        return None  # not loaded by this store: nothing to compare with
    fingerprint = getattr(session, _FINGERPRINT, None)
    if fingerprint is None or _fingerprint(session, data) != fingerprint:
        return None  # changed in place: Django's SESSION_SAVE_EVERY_REQUEST saves it in full
    now = utc_now()
    expire_date: datetime = session._expire_date(data)  # type: ignore[attr-defined]
    lifetime = (expire_date - now).total_seconds()
    threshold = min(float(touch_after), lifetime / 2)
    if (expire_date - stored).total_seconds() < threshold:
        return SKIPPED
    return _Touch(
        expire_date=expire_date,
        update={"$set": {EXPIRY_FIELD: expire_date, **devices.touch_fields(session)}},
    )


def _live(session_key: str) -> dict[str, Any]:
    # As a load: an expired document the TTL monitor has not removed yet is not extended.
    return {"_id": session_key, EXPIRY_FIELD: {"$gt": utc_now()}}


def _done(session: SessionBase, plan: _Touch | str, matched: int = 1) -> bool:
    if matched == 0:
        raise UpdateError  # deleted meanwhile (a logout elsewhere): never brought back
    if isinstance(plan, _Touch):
        setattr(session, _STORED_EXPIRY, plan.expire_date)
        setattr(session, _OUTCOME, EXTENDED)
    else:
        setattr(session, _OUTCOME, SKIPPED)
    return True


def touched(session: SessionBase, session_key: str, data: dict[str, Any]) -> bool:
    """Apply the rule to a save of ``session``; return False when it must be saved in full.

    Raises UpdateError when the touch finds no live document (Django's
    middleware turns it into SessionInterrupted), and what mongo_operation()
    raises when MongoDB fails.
    """
    plan = _plan(session, data)
    if plan is None:
        setattr(session, _OUTCOME, None)
        return False
    if plan == SKIPPED or not isinstance(plan, _Touch):
        return _done(session, SKIPPED)
    with mongo_operation("touch", session_key):
        collection = get_collection()
        result = collection.update_one(_live(session_key), plan.update)
    return _done(session, plan, result.matched_count)


async def atouched(session: SessionBase, session_key: str, data: dict[str, Any]) -> bool:
    """Apply the rule to an asave() of ``session``, from async code (see touched())."""
    plan = _plan(session, data)
    if plan is None:
        setattr(session, _OUTCOME, None)
        return False
    if plan == SKIPPED or not isinstance(plan, _Touch):
        return _done(session, SKIPPED)
    with mongo_operation("touch", session_key):
        collection = await aget_collection()
        result = await collection.update_one(_live(session_key), plan.update)
    return _done(session, plan, result.matched_count)


def wants_touch(session: SessionBase) -> bool:
    """Whether a read-only request should save ``session`` so the rule can extend it.

    True when the rule is on and the request read (accessed) a live session
    without modifying it; sessions the request never read are left alone.
    """
    return (
        conf.MONGO_SESSIONS_TOUCH_AFTER is not None
        and session.accessed
        and not session.modified
        and getattr(session, _STORED_EXPIRY, None) is not None
        and session.session_key is not None
    )


def outcome(session: SessionBase) -> str | None:
    """Return SKIPPED or EXTENDED for the last save of ``session`` the rule handled, else None."""
    result: str | None = getattr(session, _OUTCOME, None)
    return result


def stored_age(session: SessionBase) -> int | None:
    """Return the seconds the stored expiry of a session left as it was still has, or None."""
    if outcome(session) != SKIPPED:
        return None
    stored: datetime | None = getattr(session, _STORED_EXPIRY, None)
    if stored is None:
        return None
    return max(0, int((stored - utc_now()) / timedelta(seconds=1)))
