"""Sessions per user: list them, or log a user out everywhere."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.sessions.backends.base import SessionBase

from . import signals
from .clock import utc_now
from .connection import aget_collection, get_collection
from .devices import ADDRESS_FIELD, LAST_ACTIVITY_FIELD, USER_AGENT_FIELD
from .indexes import USER_FIELD
from .operation import mongo_operation
from .redaction import hash_session_key


@dataclass(frozen=True)
class UserSession:
    """One live session of a user, identified by a hash of its key, never the key."""

    key_hash: str
    created_at: datetime | None
    expire_date: datetime
    # Recorded with MONGO_SESSIONS_RECORD_DEVICES (see mongo_sessions.devices), else None.
    user_agent: str | None = None
    client_address: str | None = None
    last_activity: datetime | None = None


def _user_id(user: Any) -> str:
    # The same string django.contrib.auth.login() stores in the session.
    return str(user._meta.pk.value_to_string(user))


def _revoke_filter(user: Any, keep: str | SessionBase | None) -> dict[str, Any]:
    query: dict[str, Any] = {USER_FIELD: _user_id(user)}
    keep_key = keep.session_key if isinstance(keep, SessionBase) else keep
    if keep_key:
        query["_id"] = {"$ne": keep_key}
    return query


def _live_filter(user: Any) -> dict[str, Any]:
    return {USER_FIELD: _user_id(user), "expire_date": {"$gt": utc_now()}}


_LISTED_FIELDS = {
    "_id": True,
    "created_at": True,
    "expire_date": True,
    USER_AGENT_FIELD: True,
    ADDRESS_FIELD: True,
    LAST_ACTIVITY_FIELD: True,
}


def _to_user_session(document: dict[str, Any]) -> UserSession:
    return UserSession(
        key_hash=hash_session_key(document["_id"]),
        created_at=document.get("created_at"),
        expire_date=document["expire_date"],
        user_agent=document.get(USER_AGENT_FIELD),
        client_address=document.get(ADDRESS_FIELD),
        last_activity=document.get(LAST_ACTIVITY_FIELD),
    )


def revoke_user_sessions(user: Any, keep: str | SessionBase | None = None) -> int:
    """Delete every session of ``user`` except ``keep``; return how many were deleted."""
    with mongo_operation("revoke_user_sessions"):
        collection = get_collection()
        result = collection.delete_many(_revoke_filter(user, keep))
    signals.send_user_sessions_revoked(user, result.deleted_count, keep)
    return result.deleted_count


async def arevoke_user_sessions(user: Any, keep: str | SessionBase | None = None) -> int:
    """Delete every session of ``user`` except ``keep``, from async code."""
    with mongo_operation("revoke_user_sessions"):
        collection = await aget_collection()
        result = await collection.delete_many(_revoke_filter(user, keep))
    await signals.asend_user_sessions_revoked(user, result.deleted_count, keep)
    return result.deleted_count


def _key_with_hash(documents: list[dict[str, Any]], key_hash: str) -> str | None:
    for document in documents:
        key = document.get("_id")
        if isinstance(key, str) and hash_session_key(key) == key_hash:
            return key
    return None


def revoke_session(user: Any, key_hash: str) -> bool:
    """End the one session of ``user`` whose key hashes to ``key_hash``.

    ``key_hash`` is a ``UserSession.key_hash`` (str). Returns True when a session
    was deleted, False when ``user`` has none with that hash (another user's
    session is never touched: the delete is filtered by ``user_id`` too). Sends
    ``session_ended`` with reason ``"revoke"``. Raises SessionStoreError (and
    subclasses) when MongoDB fails.
    """
    user_id = _user_id(user)
    with mongo_operation("revoke_session"):
        collection = get_collection()
        documents = list(collection.find({USER_FIELD: user_id}, projection={"_id": True}))
        key = _key_with_hash(documents, key_hash)
        if key is None:
            return False
        result = collection.delete_one({"_id": key, USER_FIELD: user_id})
    if not result.deleted_count:
        return False
    signals.send_session_revoked(key, user_id)
    return True


async def arevoke_session(user: Any, key_hash: str) -> bool:
    """End one chosen session of ``user``, from async code (see revoke_session())."""
    user_id = _user_id(user)
    with mongo_operation("revoke_session"):
        collection = await aget_collection()
        documents = await collection.find({USER_FIELD: user_id}, projection={"_id": True}).to_list()
        key = _key_with_hash(documents, key_hash)
        if key is None:
            return False
        result = await collection.delete_one({"_id": key, USER_FIELD: user_id})
    if not result.deleted_count:
        return False
    await signals.asend_session_revoked(key, user_id)
    return True


def user_sessions(user: Any) -> list[UserSession]:
    """List the live sessions of ``user``, newest first."""
    with mongo_operation("user_sessions"):
        collection = get_collection()
        documents = list(collection.find(_live_filter(user), projection=_LISTED_FIELDS))
    return _sorted(documents)


async def auser_sessions(user: Any) -> list[UserSession]:
    """List the live sessions of ``user``, newest first, from async code."""
    with mongo_operation("user_sessions"):
        collection = await aget_collection()
        documents = await collection.find(_live_filter(user), projection=_LISTED_FIELDS).to_list()
    return _sorted(documents)


def _sorted(documents: list[dict[str, Any]]) -> list[UserSession]:
    # Sorted here rather than by the server: a user has a handful of sessions,
    # and a server-side sort would need a compound index for no gain.
    sessions = [_to_user_session(document) for document in documents]
    return sorted(sessions, key=lambda s: (s.created_at is not None, s.created_at), reverse=True)
