"""Stored sessions from one format to the other: ``mongo_sessions_setup --convert``.

Loads read both formats, so nothing needs converting for sessions to keep
working after ``MONGO_SESSIONS_FORMAT`` changes: each session is rewritten in
the new format by its next save. ``--convert`` rewrites the others in place,
in batches of at most :data:`BATCH_SIZE` documents (one ``find`` and one
unordered ``bulk_write`` per batch), so that every live session can be queried
in the document format, or every session read by Django's engines again after
going back to the signed one.

Each rewrite is conditional on the stored value being still the one read (the
filter holds it): a session a request saved in between keeps what the request
saved. A session that cannot be converted (a signature that does not match,
data the document format does not store, a converted document over MongoDB's
16 MiB limit, a write the server refuses) is left as it is, and counted: the
others are converted, and a re-run does not fail on it either. A setting the
target format cannot work with (``MONGO_SESSIONS_COMPRESS_MIN_LENGTH``, E052)
stops the run before any rewrite.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from pymongo import UpdateOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from . import document, signed
from .clock import utc_now
from .exceptions import SessionDataError
from .fields import check_document_size
from .session import SessionStore
from .validation import DOCUMENT

#: Documents read and rewritten per batch.
BATCH_SIZE = 500


@dataclass
class ConvertReport:
    """What a conversion did, in numbers of sessions."""

    target: str
    converted: int = 0
    left: int = 0  # could not be converted: kept as they were
    saved_meanwhile: int = 0  # saved by a request between the read and the rewrite


def engine_store() -> SessionStore:
    """Return a store of the configured engine: SESSION_ENGINE's if it is this package's.

    A subclass of the package's store signs with a salt of its own (Django's
    ``key_salt`` holds the class name), so its sessions are converted with it.
    """
    store_class = getattr(import_module(settings.SESSION_ENGINE), "SessionStore", None)
    if isinstance(store_class, type) and issubclass(store_class, SessionStore):
        return store_class()
    return SessionStore()


def in_format(store: SessionStore, stored: Any, target: str) -> Any:
    """Return ``stored`` (a ``data`` field) in the ``target`` format, or None if it cannot be.

    Raises ImproperlyConfigured (E052) for a setting the target format reads.
    """
    try:
        if target == DOCUMENT:
            if type(stored) is dict:
                return stored
            session = signed.loads(stored, store.key_salt, store.serializer)
            if not isinstance(session, dict):
                return None
            return document.to_document(session)[0]
        if isinstance(stored, str):
            return stored
        return store._encode_at(document.from_document(stored), utc_now())
    except ImproperlyConfigured:
        raise  # a setting the target format reads (E052): no session can be converted
    except Exception:
        # A signature that does not match, data that is not JSON, a foreign value...
        return None


def count_in_other_format(collection: Collection[Any], store: SessionStore) -> int:
    """Return how many live sessions are stored in the format the store does not write."""
    return collection.count_documents(_other_format(store._write_format()))


def _other_format(target: str) -> dict[str, Any]:
    return {
        "_id": {"$type": "string"},
        "data": {"$type": "string" if target == DOCUMENT else "object"},
        "expire_date": {"$gt": utc_now()},
    }


def convert_sessions(collection: Collection[Any], batch_size: int = BATCH_SIZE) -> ConvertReport:
    """Rewrite the live sessions stored in the other format in the configured one.

    Raises what pymongo raises (the caller bounds the whole run in time), and
    ImproperlyConfigured (E052) for a setting the target format reads.
    """
    store = engine_store()
    target = store._write_format()
    report = ConvertReport(target=target)
    query = _other_format(target)
    while True:
        # Whole documents: the converted one's size is checked before it is sent.
        batch = list(collection.find(query).sort("_id", 1).limit(batch_size))
        if not batch:
            return report
        # The next batch starts after this one (sessions' _ids are strings: one type).
        query = {**query, "_id": {"$type": "string", "$gt": batch[-1]["_id"]}}
        rewrites = []
        for found in batch:
            converted = in_format(store, found["data"], target)
            if converted is None:
                report.left += 1
                continue
            if not _fits(found, converted):
                report.left += 1
                continue
            unchanged = {"_id": found["_id"], "data": found["data"]}
            rewrites.append(UpdateOne(unchanged, {"$set": {"data": converted}}))
        if rewrites:
            _rewrite(collection, rewrites, report)


def _fits(found: dict[str, Any], converted: Any) -> bool:
    """Return whether ``found`` with ``converted`` as its data is within 16 MiB."""
    try:
        check_document_size({**found, "data": converted}, "convert")
    except SessionDataError:
        return False
    return True


def _rewrite(collection: Collection[Any], rewrites: list[UpdateOne], report: ConvertReport) -> None:
    """Send one batch's rewrites; a rewrite the server refuses is counted as left."""
    try:
        result = collection.bulk_write(rewrites, ordered=False)
    except BulkWriteError as e:
        details = e.details
        if details.get("writeConcernErrors"):
            raise  # applied or not, unknown: translated by the caller's mongo_operation
        # Unordered: every other rewrite was sent. A refused one is unchanged.
        refused = len(details.get("writeErrors", []))
        matched = details.get("nMatched", 0)
        report.left += refused
        report.converted += matched
        report.saved_meanwhile += len(rewrites) - matched - refused
        return
    report.converted += result.matched_count
    report.saved_meanwhile += len(rewrites) - result.matched_count
