"""Bring sessions from other stores into the collection, so switching logs nobody out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY as AUTH_USER_ID_KEY
from django.db import connections
from django.utils import timezone as django_timezone
from django.utils.dateparse import parse_datetime
from pymongo import InsertOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from .clock import to_utc, utc_now
from .convert import in_format
from .index_changes import seed_ttl_index
from .indexes import SEED_TTL_FIELD
from .session import SessionStore
from .unique_indexes import blocking_index_error, is_key_collision
from .validation import ttl_seconds

BATCH_SIZE = 500
DUPLICATE_KEY = 11000


@dataclass
class CopyReport:
    """What a copy did, in numbers."""

    copied: int = 0
    already_present: int = 0
    skipped: int = 0


def _document(
    session_key: str, data: str, expire_date: datetime, created_at: datetime
) -> dict[str, Any]:
    # Django's engines sign with the salt of a class named SessionStore: so does this one.
    store = SessionStore()
    # Django's encoding, which the signed format keeps; in the document format the
    # session as a sub-document, unless it cannot be one (then kept as it was:
    # loads read both formats).
    converted = in_format(store, data, store._write_format())
    document: dict[str, Any] = {
        "_id": session_key,
        "data": data if converted is None else converted,
        "expire_date": expire_date,
        "created_at": created_at,
    }
    # The user index serves revoke_user_sessions(): fill it for copied sessions too.
    user_id = store.decode(data).get(AUTH_USER_ID_KEY)
    if user_id is not None:
        document["user_id"] = str(user_id)
    return document


def _insert(
    collection: Collection[Any], documents: list[dict[str, Any]], report: CopyReport
) -> None:
    if not documents:
        return
    try:
        # Unordered, and the _id decides: re-running the copy is harmless.
        result = collection.bulk_write([InsertOne(d) for d in documents], ordered=False)
        report.copied += result.inserted_count
    except BulkWriteError as e:
        details = e.details
        errors = details["writeErrors"]
        for error in errors:
            if error["code"] == DUPLICATE_KEY and not is_key_collision(error):
                # Not "already present": a unique index other than _id refused it.
                raise blocking_index_error("copy", error) from None
        duplicates = sum(1 for error in errors if error["code"] == DUPLICATE_KEY)
        if duplicates != len(errors):
            raise
        report.copied += details["nInserted"]
        report.already_present += duplicates


def import_db_sessions(collection: Collection[Any], database: str = "default") -> CopyReport:
    """Copy the live sessions of Django's database backend (table django_session)."""
    report = CopyReport()
    now = utc_now()
    connection = connections[database]
    batch: list[dict[str, Any]] = []
    with connection.cursor() as cursor:
        table = connection.ops.quote_name("django_session")
        cursor.execute(f"SELECT session_key, session_data, expire_date FROM {table}")
        for session_key, session_data, expire_date in cursor.fetchall():
            expire_date = _from_django_db(expire_date)
            if expire_date <= now or not SessionStore()._validate_session_key(session_key):
                report.skipped += 1
                continue
            batch.append(_document(session_key, session_data, expire_date, now))
            if len(batch) >= BATCH_SIZE:
                _insert(collection, batch, report)
                batch = []
    _insert(collection, batch, report)
    return report


def migrate_seed_sessions(collection: Collection[Any]) -> tuple[CopyReport, str | None]:
    """Convert documents of django-mongo-sessions 0.x in place, then drop its TTL index."""
    report = CopyReport()
    now = utc_now()
    ttl = timedelta(seconds=ttl_seconds())
    seed_filter = {"session_key": {"$exists": True}, "session_data": {"$exists": True}}
    for seed in collection.find(seed_filter):
        created_at, expire_date = _seed_dates(seed.get(SEED_TTL_FIELD), ttl)
        if expire_date <= now or not SessionStore()._validate_session_key(seed["session_key"]):
            report.skipped += 1
        else:
            _insert(
                collection,
                [_document(seed["session_key"], seed["session_data"], expire_date, created_at)],
                report,
            )
        # The converted copy is in place (or the session was dead): remove the original.
        collection.delete_one({"_id": seed["_id"]})
    dropped = None
    index = seed_ttl_index(collection)
    if index is not None:
        collection.drop_index(index["name"])
        dropped = index["name"]
    return report, dropped


def _from_django_db(value: datetime | str) -> datetime:
    """Return a django_session.expire_date read by a raw cursor as an aware UTC datetime.

    Backends give it aware (PostgreSQL with USE_TZ), or naive: in UTC when USE_TZ
    is True, and on the clock of Django's naive timezone.now() when it is False.
    """
    if isinstance(value, str):  # a backend without a datetime converter
        parsed = parse_datetime(value)
        if parsed is None:
            raise ValueError(f"unreadable expire_date in django_session: {value!r}")
        value = parsed
    if django_timezone.is_aware(value) or settings.USE_TZ:
        return value.replace(tzinfo=value.tzinfo or timezone.utc).astimezone(timezone.utc)
    return to_utc(value)


def _seed_dates(creation_date: Any, ttl: timedelta) -> tuple[datetime, datetime]:
    """Return (created_at, expire_date), aware UTC, of a django-mongo-sessions 0.x document.

    0.x stored Django's timezone.now(): with USE_TZ = False that is a naive local
    time, which BSON keeps as if it were UTC; 0.x compared it with the naive
    timezone.now() again, and so does this conversion. A missing or unreadable
    creation_date counts as now.
    """
    if not isinstance(creation_date, datetime):
        now = utc_now()
        return now, now + ttl
    if settings.USE_TZ:
        created_at = creation_date.replace(tzinfo=creation_date.tzinfo or timezone.utc)
        return created_at, created_at + ttl
    local = creation_date.replace(tzinfo=None)
    return to_utc(local), to_utc(local + ttl)
