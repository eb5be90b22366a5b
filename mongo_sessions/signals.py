"""Django signals sent when sessions are created, ended and revoked.

Each is sent once per event, after MongoDB acknowledged the write, from the
code path (sync or async) that made it. Receivers get keyword arguments only;
none of them is ever given a session key, only its hash
(``mongo_sessions.hash_session_key``).

``session_created``
    A new session document was inserted: a first save of a new session, or the
    new key of a key change (``cycle_key()``, which ``django.contrib.auth.login()``
    calls). Arguments: ``sender`` (the ``SessionStore`` class), ``session`` (the
    store), ``key_hash`` (str).
``session_ended``
    A session document was deleted by this package. Arguments: ``sender`` (the
    ``SessionStore`` class, or ``None`` for ``revoke_session``), ``session``
    (the store, or ``None``), ``key_hash`` (str), ``user_id`` (str or ``None``:
    the user whose session it was, when known) and ``reason``: ``"logout"``
    (``flush()``/``delete()`` of the store's own session, as
    ``django.contrib.auth.logout()`` does), ``"key change"`` (the old key deleted
    by ``cycle_key()``) or ``"revoke"`` (``revoke_session()``). Sessions that
    expire are removed by MongoDB's TTL monitor: no signal is sent for them.
``user_sessions_revoked``
    ``revoke_user_sessions()`` deleted the sessions of a user. Arguments:
    ``sender`` (``None``), ``user``, ``count`` (int, how many were deleted) and
    ``kept_key_hash`` (str or ``None``: the session that was kept).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import SESSION_KEY as AUTH_USER_ID_KEY
from django.contrib.sessions.backends.base import SessionBase
from django.dispatch import Signal

from .redaction import hash_session_key

session_created = Signal()
session_ended = Signal()
user_sessions_revoked = Signal()

LOGOUT = "logout"
KEY_CHANGE = "key change"
REVOKE = "revoke"


async def _asend(signal: Signal, **kwargs: Any) -> None:
    """Send from async code: Signal.asend where Django has it (5.0+), else send."""
    asend = getattr(signal, "asend", None)
    if asend is None:
        signal.send(**kwargs)
    else:
        await asend(**kwargs)


def _created_kwargs(session: SessionBase) -> dict[str, Any]:
    return {
        "sender": type(session),
        "session": session,
        "key_hash": hash_session_key(session.session_key or ""),
    }


def send_session_created(session: SessionBase) -> None:
    """Send ``session_created`` for the document ``session`` has just inserted."""
    if session_created.receivers:  # no key hash to compute for nobody (every create)
        session_created.send(**_created_kwargs(session))


async def asend_session_created(session: SessionBase) -> None:
    """Send ``session_created`` from async code."""
    if session_created.receivers:
        await _asend(session_created, **_created_kwargs(session))


def _ended_kwargs(session: SessionBase, deleted_key: str) -> dict[str, Any]:
    current = session.session_key
    # cycle_key() creates the new key first, then deletes the old one: a store
    # deleting a key other than the one it now holds is changing its key.
    reason = KEY_CHANGE if current is not None and deleted_key != current else LOGOUT
    cache = getattr(session, "_session_cache", None) or {}
    user_id = cache.get(AUTH_USER_ID_KEY)
    return {
        "sender": type(session),
        "session": session,
        "key_hash": hash_session_key(deleted_key),
        "user_id": None if user_id is None else str(user_id),
        "reason": reason,
    }


def send_session_deleted(session: SessionBase, deleted_key: str, deleted_count: int) -> None:
    """Send ``session_ended`` when ``session``'s delete() removed a document."""
    if deleted_count and session_ended.receivers:
        session_ended.send(**_ended_kwargs(session, deleted_key))


async def asend_session_deleted(session: SessionBase, deleted_key: str, deleted_count: int) -> None:
    """Send ``session_ended`` for adelete() from async code."""
    if deleted_count and session_ended.receivers:
        await _asend(session_ended, **_ended_kwargs(session, deleted_key))


def _revoked_kwargs(key: str, user_id: str) -> dict[str, Any]:
    return {
        "sender": None,
        "session": None,
        "key_hash": hash_session_key(key),
        "user_id": user_id,
        "reason": REVOKE,
    }


def send_session_revoked(key: str, user_id: str) -> None:
    """Send ``session_ended`` for a session ended by revoke_session()."""
    session_ended.send(**_revoked_kwargs(key, user_id))


async def asend_session_revoked(key: str, user_id: str) -> None:
    """Send ``session_ended`` for a session ended by arevoke_session()."""
    await _asend(session_ended, **_revoked_kwargs(key, user_id))


def _user_revoked_kwargs(user: Any, count: int, keep: str | SessionBase | None) -> dict[str, Any]:
    kept = keep.session_key if isinstance(keep, SessionBase) else keep
    return {
        "sender": None,
        "user": user,
        "count": count,
        "kept_key_hash": hash_session_key(kept) if kept else None,
    }


def send_user_sessions_revoked(user: Any, count: int, keep: str | SessionBase | None) -> None:
    """Send ``user_sessions_revoked`` once for a revoke_user_sessions() call."""
    user_sessions_revoked.send(**_user_revoked_kwargs(user, count, keep))


async def asend_user_sessions_revoked(
    user: Any, count: int, keep: str | SessionBase | None
) -> None:
    """Send ``user_sessions_revoked`` once for an arevoke_user_sessions() call."""
    await _asend(user_sessions_revoked, **_user_revoked_kwargs(user, count, keep))
