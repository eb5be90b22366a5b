"""Sessions per user: list them, or log a user out everywhere."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from django.contrib.sessions.backends.base import SessionBase

from . import driver, signals
from .clock import to_django, utc_now
from .connection import aget_collection, get_collection
from .devices import ADDRESS_FIELD, LAST_ACTIVITY_FIELD, USER_AGENT_FIELD
from .indexes import USER_FIELD
from .operation import mongo_operation
from .redaction import hash_session_key
from .session import SESSION_KEY_PATTERN

if TYPE_CHECKING:
    from bson.codec_options import CodecOptions

logger = logging.getLogger("mongo_sessions")


@dataclass(frozen=True)
class UserSession:
    """One live session of a user, identified by a hash of its key, never the key.

    ``created_at`` and ``expire_date`` are as Django gives datetimes: aware, in
    UTC, with ``USE_TZ = True``; naive, on the clock of ``timezone.now()``, with
    ``USE_TZ = False``. ``created_at`` is None when the document has none (or an
    unreadable one).
    """

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


@functools.cache
def _listing_codec_options() -> CodecOptions[dict[str, Any]]:
    """Return the codec options of a listing (a function: bson is imported on first use).

    A date outside datetime's range (years 1-9999) comes back as a DatetimeMS
    instead of failing the whole listing; _to_user_session then reports it.
    """
    options = driver.codec_options
    return options.CodecOptions(
        tz_aware=True,
        tzinfo=timezone.utc,
        datetime_conversion=options.DatetimeConversion.DATETIME_AUTO,
    )


def _to_user_session(document: dict[str, Any]) -> UserSession | None:
    """Return the listed form of a session document, or None if it cannot be one.

    Documents are read as they are: another program (or a person) may have
    written them. One whose _id is not a session key, or whose expire_date is
    not a date, is no session this package can load: it is skipped and
    reported. An unreadable created_at is reported and listed as None.
    """
    session_key, expire_date = document.get("_id"), document.get("expire_date")
    if not isinstance(session_key, str) or not SESSION_KEY_PATTERN.fullmatch(session_key):
        logger.warning(
            "user_sessions: skipped a document whose _id is not a session key (a %s)",
            type(session_key).__name__,
        )
        return None
    key_hash = hash_session_key(session_key)
    if not isinstance(expire_date, datetime):
        logger.warning(
            "user_sessions: skipped session %s, its expire_date is a %s, not a date",
            key_hash,
            type(expire_date).__name__,
        )
        return None
    created_at = document.get("created_at")
    if created_at is not None and not isinstance(created_at, datetime):
        logger.warning(
            "user_sessions: session %s has a created_at that is a %s, not a date; listed as None",
            key_hash,
            type(created_at).__name__,
        )
        created_at = None
    return UserSession(
        key_hash=key_hash,
        created_at=None if created_at is None else to_django(created_at),
        expire_date=to_django(expire_date),
        user_agent=_text_or_none(document.get(USER_AGENT_FIELD)),
        client_address=_text_or_none(document.get(ADDRESS_FIELD)),
        last_activity=_date_or_none(document.get(LAST_ACTIVITY_FIELD)),
    )


def _text_or_none(value: Any) -> str | None:
    """Return a recorded device field if it is text (documents may be written by others)."""
    return value if isinstance(value, str) else None


def _date_or_none(value: Any) -> datetime | None:
    """Return a recorded date as Django gives datetimes, or None if it is not a date."""
    return to_django(value) if isinstance(value, datetime) else None


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
        listed = collection.with_options(codec_options=_listing_codec_options())
        documents = list(listed.find(_live_filter(user), projection=_LISTED_FIELDS))
    return _sorted(documents)


async def auser_sessions(user: Any) -> list[UserSession]:
    """List the live sessions of ``user``, newest first, from async code."""
    with mongo_operation("user_sessions"):
        collection = await aget_collection()
        listed = collection.with_options(codec_options=_listing_codec_options())
        documents = await listed.find(_live_filter(user), projection=_LISTED_FIELDS).to_list()
    return _sorted(documents)


def _sorted(documents: list[dict[str, Any]]) -> list[UserSession]:
    # Sorted here rather than by the server: a user has a handful of sessions,
    # and a server-side sort would need a compound index for no gain.
    sessions = [s for s in map(_to_user_session, documents) if s is not None]
    # Newest first, sessions without a creation date last. The key is a number:
    # datetimes of mixed awareness could not be compared.
    return sorted(
        sessions,
        key=lambda s: s.created_at.timestamp() if s.created_at else float("-inf"),
        reverse=True,
    )
