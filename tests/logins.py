"""Saved sessions, anonymous or of logged-in users, for the tests."""

from __future__ import annotations

from typing import Any

from mongo_sessions.session import SessionStore


def saved_session(**data: Any) -> SessionStore:
    """Save and return a new session holding ``data``."""
    store = SessionStore()
    store.update(data)
    store.save()
    assert store.session_key is not None
    return store


def logged_in_session(user: Any, **data: Any) -> SessionStore:
    """Save and return a session that ``user`` is logged in to, holding ``data`` as well."""
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session.update(data)
    session.save()
    return session


async def alogged_in_session(user: Any) -> SessionStore:
    """Save and return, through the async API, a session that ``user`` is logged in to."""
    session = SessionStore()
    await session.aset("_auth_user_id", str(user.pk))
    await session.asave()
    return session
