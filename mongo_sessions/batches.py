"""Work over many documents in bounded batches: each batch has its own time limit.

A request's ``MONGO_SESSIONS_TIMEOUT`` bounds one session operation. Removing
a backlog of expired sessions (``manage.py clearsessions`` on a collection
without its TTL index) can take minutes: it runs as a loop of batches of
``MONGO_SESSIONS_BATCH_SIZE`` documents, each bounded by
``MONGO_SESSIONS_BATCH_TIMEOUT`` seconds, so it always progresses and never
waits on one call for long. Reaching the server comes first, under the
request's ``MONGO_SESSIONS_TIMEOUT``: a server that is not there fails the
command within that, not after a batch's bound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import driver, validation
from .connection import aget_collection, aping, get_collection, ping
from .operation import mongo_operation

if TYPE_CHECKING:
    from pymongo import DeleteOne

_ID_ONLY = {"_id": True}


def batch_settings() -> tuple[int, float]:
    """Return (documents per batch, seconds per batch), validated.

    :raises ImproperlyConfigured: naming the setting and its check id (E018), when
        one is not a positive integer (size) or a positive number (timeout).
    """
    return validation.batch_settings()  # the checks of `check`, E018


def delete_in_batches(operation: str, query: dict[str, Any]) -> int:
    """Delete every document matching ``query``, batch by batch; return how many.

    Each batch finds up to ``MONGO_SESSIONS_BATCH_SIZE`` matching ``_id`` values
    and deletes those that still match ``query`` (a document changed in between
    is left alone), under ``MONGO_SESSIONS_BATCH_TIMEOUT`` seconds: one ``find``
    and one ``delete`` command of one statement per document, each found by
    ``_id``. A deleted document no longer matches, so the loop ends.

    Before the first batch, a ``ping`` under ``MONGO_SESSIONS_TIMEOUT``
    checks that the server can be reached at all.

    :raises SessionStoreUnavailable: within ``MONGO_SESSIONS_TIMEOUT`` seconds
        when the server cannot be reached; nothing was deleted.
    :raises SessionStoreError: (its subclasses included) when a batch fails; the
        batches before it stay done.
    :raises ImproperlyConfigured: when a batch setting is invalid.
    """
    size, timeout = batch_settings()
    # Under pymongo.timeout() server selection waits for the whole bound left:
    # a batch's (60 s by default) is for slow deletes, not for a missing server.
    ping(operation)
    deleted = 0
    while True:
        with mongo_operation(operation, timeout=timeout):
            collection = get_collection()
            ids = [d["_id"] for d in collection.find(query, projection=_ID_ONLY, limit=size)]
            if ids:
                result = collection.bulk_write(_deletes(ids, query), ordered=False)
                deleted += result.deleted_count
        if len(ids) < size:
            return deleted


def _deletes(ids: list[Any], query: dict[str, Any]) -> list[DeleteOne]:
    # One statement per _id rather than one {"_id": {"$in": ids}}: each is an
    # index lookup, where some servers scan the collection for an $in.
    return [driver.pymongo.DeleteOne({**query, "_id": document_id}) for document_id in ids]


async def adelete_in_batches(operation: str, query: dict[str, Any]) -> int:
    """Delete every document matching ``query``, batch by batch, from async code.

    See ``delete_in_batches``.
    """
    size, timeout = batch_settings()
    await aping(operation)  # reach the server first (see delete_in_batches)
    deleted = 0
    while True:
        with mongo_operation(operation, timeout=timeout):
            collection = await aget_collection()
            cursor = collection.find(query, projection=_ID_ONLY, limit=size)
            ids = [d["_id"] async for d in cursor]
            if ids:
                result = await collection.bulk_write(_deletes(ids, query), ordered=False)
                deleted += result.deleted_count
        if len(ids) < size:
            return deleted
