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
or, for a save() (what ``SESSION_SAVE_EVERY_REQUEST`` calls), when its data
changed in place (a list in it appended to): the stored data, decoded again,
is compared with the session's. The middleware's touch of a read-only request
without ``SESSION_SAVE_EVERY_REQUEST`` skips that comparison: Django saves no
in-place change there either.
"""

from __future__ import annotations

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
_STORED_DATA = "_mongo_sessions_stored_data"
_OUTCOME = "_mongo_sessions_touch"

# Outcomes of the rule for one save, kept on the store for the middleware.
SKIPPED = "skipped"  # within the window: nothing written
EXTENDED = "extended"  # the expiry was moved


@dataclass(frozen=True)
class _Touch:
    """A touch to send: the new expiry and the update that stores it."""

    expire_date: datetime
    update: dict[str, Any]


def remember_loaded(
    session: SessionBase, document: dict[str, Any] | None, data: dict[str, Any]
) -> None:
    """Keep what the rule needs from a document just loaded (no-op when the rule is off)."""
    if conf.MONGO_SESSIONS_TOUCH_AFTER is None or document is None:
        return
    expiry = document.get(EXPIRY_FIELD)
    if isinstance(expiry, datetime):
        setattr(session, _STORED_EXPIRY, expiry)
        # The encoded string as stored: decoded again only by a save() that needs it.
        setattr(session, _STORED_DATA, document.get("data"))


def _changed_in_place(session: SessionBase, data: dict[str, Any]) -> bool:
    stored = getattr(session, _STORED_DATA, None)
    return stored is None or session.decode(stored) != data


def _plan(session: SessionBase, data: dict[str, Any], in_place: bool) -> _Touch | str | None:
    """Return None for a full save, SKIPPED for no write, or the touch to send."""
    touch_after = conf.MONGO_SESSIONS_TOUCH_AFTER
    if touch_after is None or session.modified:
        return None
    stored: datetime | None = getattr(session, _STORED_EXPIRY, None)
    if stored is None:
        return None  # not loaded by this store: nothing to compare with
    if in_place and _changed_in_place(session, data):
        return None  # SESSION_SAVE_EVERY_REQUEST saves such a change in full: so do we
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


def touched(
    session: SessionBase, session_key: str, data: dict[str, Any], in_place: bool = True
) -> bool:
    """Apply the rule to a save of ``session``; return False when it must be saved in full.

    ``in_place=False`` skips the check for data changed in place (the
    middleware's touch of a read-only request). Raises UpdateError when the
    touch finds no live document (Django's middleware turns it into
    SessionInterrupted), and what mongo_operation() raises when MongoDB fails.
    """
    plan = _plan(session, data, in_place)
    if plan is None:
        setattr(session, _OUTCOME, None)
        return False
    if plan == SKIPPED or not isinstance(plan, _Touch):
        return _done(session, SKIPPED)
    with mongo_operation("touch", session_key):
        collection = get_collection()
        result = collection.update_one(_live(session_key), plan.update)
    return _done(session, plan, result.matched_count)


async def atouched(
    session: SessionBase, session_key: str, data: dict[str, Any], in_place: bool = True
) -> bool:
    """Apply the rule to an asave() of ``session``, from async code (see touched())."""
    plan = _plan(session, data, in_place)
    if plan is None:
        setattr(session, _OUTCOME, None)
        return False
    if plan == SKIPPED or not isinstance(plan, _Touch):
        return _done(session, SKIPPED)
    with mongo_operation("touch", session_key):
        collection = await aget_collection()
        result = await collection.update_one(_live(session_key), plan.update)
    return _done(session, plan, result.matched_count)


def touch_read_only(session: SessionBase) -> None:
    """Extend the expiry of a read-only request's session if the rule says so (the middleware).

    Nothing else is written: without SESSION_SAVE_EVERY_REQUEST Django saves
    no unmodified session, in-place changes included.
    """
    key = session.session_key
    data = getattr(session, "_session_cache", None)
    if key is not None and data is not None:
        touched(session, key, data, in_place=False)


async def atouch_read_only(session: SessionBase) -> None:
    """Extend the expiry of a read-only request's session, from async code."""
    key = session.session_key
    data = getattr(session, "_session_cache", None)
    if key is not None and data is not None:
        await atouched(session, key, data, in_place=False)


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
