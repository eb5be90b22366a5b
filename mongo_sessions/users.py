"""Sessions per user: list them, or log a user out everywhere."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.sessions.backends.base import SessionBase

from .clock import utc_now
from .connection import aget_collection, get_collection
from .indexes import USER_FIELD
from .operation import mongo_operation
from .redaction import hash_session_key


@dataclass(frozen=True)
class UserSession:
    """One live session of a user, identified by a hash of its key, never the key."""

    key_hash: str
    created_at: datetime | None
    expire_date: datetime


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


_LISTED_FIELDS = {"_id": True, "created_at": True, "expire_date": True}


def _to_user_session(document: dict[str, Any]) -> UserSession:
    return UserSession(
        key_hash=hash_session_key(document["_id"]),
        created_at=document.get("created_at"),
        expire_date=document["expire_date"],
    )


def revoke_user_sessions(user: Any, keep: str | SessionBase | None = None) -> int:
    """Delete every session of ``user`` except ``keep``; return how many were deleted."""
    with mongo_operation("revoke_user_sessions"):
        collection = get_collection()
        result = collection.delete_many(_revoke_filter(user, keep))
    return result.deleted_count


async def arevoke_user_sessions(user: Any, keep: str | SessionBase | None = None) -> int:
    """Delete every session of ``user`` except ``keep``, from async code."""
    with mongo_operation("revoke_user_sessions"):
        collection = await aget_collection()
        result = await collection.delete_many(_revoke_filter(user, keep))
    return result.deleted_count


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
