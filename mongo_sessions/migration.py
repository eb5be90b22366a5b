"""Bring sessions from other stores into the collection, so switching logs nobody out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from django.contrib.auth import SESSION_KEY as AUTH_USER_ID_KEY
from django.db import connections
from pymongo import InsertOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from .clock import utc_now
from .conf import conf
from .indexes import SEED_TTL_FIELD, seed_ttl_index
from .session import SessionStore

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
    document: dict[str, Any] = {
        "_id": session_key,
        "data": data,
        "expire_date": expire_date,
        "created_at": created_at,
    }
    # The user index serves revoke_user_sessions(): fill it for copied sessions too.
    user_id = SessionStore().decode(data).get(AUTH_USER_ID_KEY)
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
        duplicates = sum(1 for err in details["writeErrors"] if err["code"] == DUPLICATE_KEY)
        if duplicates != len(details["writeErrors"]):
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
            expire_date = _as_utc(expire_date)
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
    ttl = timedelta(seconds=conf.MONGO_SESSIONS_TTL)
    seed_filter = {"session_key": {"$exists": True}, "session_data": {"$exists": True}}
    for seed in collection.find(seed_filter):
        created_at = _as_utc(seed.get(SEED_TTL_FIELD) or now)
        expire_date = created_at + ttl
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


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        # Naive datetimes from MongoDB and from Django's database are UTC.
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
