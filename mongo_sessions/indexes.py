"""The indexes of the sessions collection: their expected shape, and their creation.

Changes to an existing collection's indexes are in ``index_changes.py``; unique
indexes that refuse new sessions, and their errors, in ``unique_indexes.py``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from time import monotonic
from typing import TYPE_CHECKING, Any

from . import driver
from .exceptions import describe_error

if TYPE_CHECKING:
    from pymongo import IndexModel
    from pymongo.collection import Collection

logger = logging.getLogger("mongo_sessions")

TTL_FIELD = "expire_date"
TTL_INDEX_NAME = "expire_date_1"
USER_FIELD = "user_id"
USER_INDEX_NAME = "user_id_1"

# The seed package kept a TTL index on this field of its own documents.
SEED_TTL_FIELD = "creation_date"
# ...and a unique, non-sparse index on this one.
SEED_KEY_FIELD = "session_key"
# The fields of a session document; only _id may be unique.
DOCUMENT_FIELDS = frozenset({"_id", "data", TTL_FIELD, "created_at", USER_FIELD})
BRIDGE_INDEX_NAME = f"{TTL_INDEX_NAME}_bridge"

# Codes that mean "an index of this key already exists with other options".
INDEX_CONFLICT_CODES = frozenset({85, 86})
UNAUTHORIZED_CODE = 13

# Automatic index creation (AutoIndex): the bound of one attempt, and the wait
# before the next one after a failure (doubling up to the maximum), in seconds.
# An index build on a large collection may outlast a request many times over.
AUTO_INDEX_TIMEOUT = 60.0
AUTO_INDEX_FIRST_RETRY = 10.0
AUTO_INDEX_MAX_RETRY = 600.0
AUTO_INDEX_COLLECTION_RECHECK = 0.5


def ttl_index() -> IndexModel:
    """The TTL index: each document expires at its own expire_date (expireAfterSeconds 0)."""
    return driver.pymongo.IndexModel(
        [(TTL_FIELD, driver.pymongo.ASCENDING)], name=TTL_INDEX_NAME, expireAfterSeconds=0
    )


def user_index() -> IndexModel:
    """The index of user_id: only sessions of logged-in users carry it, so it is sparse."""
    return driver.pymongo.IndexModel(
        [(USER_FIELD, driver.pymongo.ASCENDING)], name=USER_INDEX_NAME, sparse=True
    )


def expected_indexes() -> list[IndexModel]:
    """The indexes the package creates (built on each call: pymongo is imported on first use)."""
    return [ttl_index(), user_index()]


def ensure_indexes(collection: Collection[Any]) -> None:
    """Create the expected indexes if missing.

    The server refuses the whole ``createIndexes`` command for one conflicting
    index (codes 85, 86): the others are then built one by one, so that a
    conflict on one does not cost the rest, and the conflict is raised.

    Raises ``pymongo.errors.PyMongoError`` (``OperationFailure`` for a refusal).
    """
    try:
        collection.create_indexes(expected_indexes())
    except driver.errors.OperationFailure as e:
        if e.code not in INDEX_CONFLICT_CODES:
            raise
        for model in expected_indexes():
            # The conflict is raised below.
            with contextlib.suppress(driver.errors.OperationFailure):
                collection.create_indexes([model])
        raise


class AutoIndex:
    """Create the expected indexes in the background, retrying with a backoff.

    Index creation is housekeeping, not part of a session operation: reads
    already ignore expired documents, so sessions work without the indexes
    meanwhile. ``start()`` (called on each use, cheap once the indexes are
    ensured) runs one attempt at a time in a daemon thread, under its own time
    bound, and never raises; after a failure the next attempt waits
    ``AUTO_INDEX_FIRST_RETRY`` seconds, doubling up to ``AUTO_INDEX_MAX_RETRY``.
    The first failure is logged once, at WARNING, with what to do; later ones
    at DEBUG.

    The indexes are built once the collection exists (the first session
    creates it), never by creating it: a process that only reads creates
    nothing, and the collection is never created by two commands at once (a
    race some MongoDB-compatible servers handle badly). Until then, each use
    may look again after ``AUTO_INDEX_COLLECTION_RECHECK`` seconds.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        # True once the indexes are ensured, or when automatic creation is off.
        self.done = False
        self.attempts = 0  # createIndexes attempts made
        self._next_attempt = 0.0
        self._delay = AUTO_INDEX_FIRST_RETRY
        self._warned = False
        self._cancelled = False
        self._no_collection = False  # the last attempt found no collection

    def cancel(self) -> None:
        """Start no more attempts, and log nothing about one in progress: the client is gone."""
        self._cancelled = True
        self.done = True

    def stop(self, timeout: float) -> bool:
        """Start no more attempts; wait up to ``timeout`` seconds for one in progress to end.

        Return whether none is running any more. Before a collection is
        dropped: an attempt that ends after the drop would create it again
        (``createIndexes`` creates a missing collection).
        """
        self.cancel()
        return self._idle.wait(timeout)

    def due(self) -> bool:
        """Return whether an attempt should start now (no lock: a cheap first test)."""
        return not self.done and self._idle.is_set() and monotonic() >= self._next_attempt

    def start(self, collection: Collection[Any]) -> None:
        """Start an attempt in a daemon thread, unless one runs, is not due, or is done."""
        if not self.due():
            return
        with self._lock:
            if not self.due():
                return
            self._idle.clear()
        thread = threading.Thread(
            target=self._attempt, args=(collection,), name="mongo_sessions_auto_index", daemon=True
        )
        thread.start()

    def wait(self, collection: Collection[Any], timeout: float) -> bool:
        """Run an attempt now if due, and wait up to ``timeout`` seconds for its outcome.

        While the collection does not exist yet, look again every
        ``AUTO_INDEX_COLLECTION_RECHECK`` seconds; a failed attempt ends the
        wait (the next one keeps its backoff). Return ``done``. For tests and
        start-up scripts; requests never wait.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.start(collection)
            self._idle.wait(max(0.0, deadline - time.monotonic()))
            if self.done or not self._no_collection or time.monotonic() >= deadline:
                return self.done
            time.sleep(min(AUTO_INDEX_COLLECTION_RECHECK, max(0.0, deadline - time.monotonic())))

    def _attempt(self, collection: Collection[Any]) -> None:
        """Run one attempt and record its outcome (in the daemon thread)."""
        try:
            # The thread has a context of its own: the bound of the request that
            # started it does not apply, this one does.
            with driver.pymongo.timeout(AUTO_INDEX_TIMEOUT):
                names = collection.database.list_collection_names(
                    filter={"name": collection.name}, authorizedCollections=True
                )
                self._no_collection = not names
                if not names:
                    self._next_attempt = monotonic() + AUTO_INDEX_COLLECTION_RECHECK
                    return
                self.attempts += 1
                ensure_indexes(collection)
        except Exception as e:  # anything at all: a housekeeping thread must not die loudly
            self._failed(collection.full_name, e)
        else:
            if names:
                self._succeeded(collection.full_name)
        finally:
            self._idle.set()

    def _succeeded(self, full_name: str) -> None:
        if self._cancelled:
            return
        with self._lock:
            self.done = True
            warned = self._warned
        if warned:
            logger.info(
                "mongo_sessions created the indexes of %s at attempt %d.", full_name, self.attempts
            )

    def _failed(self, full_name: str, error: Exception) -> None:
        if self._cancelled:  # e.g. "Cannot use MongoClient after close" after reset()
            return
        with self._lock:
            delay = self._delay
            self._next_attempt = monotonic() + delay
            self._delay = min(delay * 2, AUTO_INDEX_MAX_RETRY)
            warned, self._warned = self._warned, True
        logger.log(
            logging.DEBUG if warned else logging.WARNING,
            "mongo_sessions could not create the indexes of %s (%s). Sessions work without "
            "them; the next attempt is in %.0f s. %s",
            full_name,
            _describe(error),
            delay,
            _advice(error),
        )


def _describe(error: Exception) -> str:
    # Never str(error): pymongo appends the server's whole reply to it.
    return describe_error(error)


def _advice(error: Exception) -> str:
    """Say what the operator should do about a failed automatic index creation."""
    code = error.code if isinstance(error, driver.errors.OperationFailure) else None
    if code == UNAUTHORIZED_CODE:
        return (
            "This account may not list collections or create indexes: run 'manage.py "
            "mongo_sessions_setup' as a user with the createIndex privilege, and set "
            "MONGO_SESSIONS_AUTO_INDEX = False."
        )
    if code in INDEX_CONFLICT_CODES:
        return (
            "An existing index differs from the expected one: run 'manage.py "
            "mongo_sessions_setup' to repair it."
        )
    return (
        "Without the TTL index, expired sessions are not removed: run 'manage.py "
        "mongo_sessions_setup', or wait for the next attempt ('manage.py check --deploy' "
        "reports missing indexes as mongo_sessions.E102)."
    )
