"""One session as it is stored: its document's size, dates and owner, for pages and tools."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.sessions.backends.base import SessionBase

from . import driver
from .clock import utc_now
from .connection import aget_collection, get_collection
from .operation import mongo_operation
from .redaction import hash_session_key
from .session import SESSION_KEY_PATTERN


@dataclass(frozen=True)
class StoredSession:
    """The stored document of one live session, identified by a hash of its key.

    ``size`` is the document's BSON size in bytes (MongoDB's limit is 16 MiB);
    ``created_at`` and ``expire_date`` are aware UTC datetimes (``created_at`` is
    None for a document written without it); ``user_id`` is the logged-in user's
    primary key as ``django.contrib.auth`` stores it, or None; ``data`` is the
    ``data`` field exactly as stored (the signed string, or the sub-document
    of the document format).
    """

    key_hash: str
    size: int
    created_at: datetime | None
    expire_date: datetime
    user_id: str | None
    data: Any


def _key_of(session: str | SessionBase | None) -> str | None:
    """Return the key to look up, or None when it cannot name a stored session."""
    key = session.session_key if isinstance(session, SessionBase) else session
    if isinstance(key, str) and SESSION_KEY_PATTERN.fullmatch(key):
        return key
    return None


def _live(session_key: str) -> dict[str, Any]:
    return {"_id": session_key, "expire_date": {"$gt": utc_now()}}


def _to_stored(document: dict[str, Any] | None) -> StoredSession | None:
    if document is None:
        return None
    return StoredSession(
        key_hash=hash_session_key(document["_id"]),
        size=len(driver.bson.encode(document)),
        created_at=document.get("created_at"),
        expire_date=document["expire_date"],
        user_id=document.get("user_id"),
        data=document.get("data"),
    )


def stored_session(session: str | SessionBase | None) -> StoredSession | None:
    """Return how the live session ``session`` is stored, or None if it is not.

    ``session`` is a session key (``str``) or a session object (its
    ``session_key`` is used, for instance ``request.session``). Keys that are
    not 8 to 64 characters of ``a-z0-9``, unknown keys and expired sessions
    give None; a malformed key sends no command. One ``find`` by ``_id``,
    bounded by ``MONGO_SESSIONS_TIMEOUT`` (seconds) like every session
    operation. Raises ``SessionStoreError`` (``SessionStoreUnavailable`` when
    MongoDB does not answer in time); the key is never in its message.
    """
    key = _key_of(session)
    if key is None:
        return None
    with mongo_operation("stored_session", key):
        collection = get_collection()
        document = collection.find_one(_live(key))
    return _to_stored(document)


async def astored_session(session: str | SessionBase | None) -> StoredSession | None:
    """Return how the live session ``session`` is stored, or None, from async code.

    The twin of ``stored_session()``: same argument, result and exceptions.
    """
    key = _key_of(session)
    if key is None:
        return None
    with mongo_operation("stored_session", key):
        collection = await aget_collection()
        document = await collection.find_one(_live(key))
    return _to_stored(document)
