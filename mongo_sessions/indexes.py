"""The indexes of the sessions collection: expected shape, creation and repair."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from dataclasses import dataclass
from time import monotonic
from typing import Any

import pymongo
from pymongo import ASCENDING, IndexModel
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError, OperationFailure

from .exceptions import SessionStoreError

logger = logging.getLogger("mongo_sessions")

TTL_FIELD = "expire_date"
TTL_INDEX_NAME = "expire_date_1"
USER_FIELD = "user_id"
USER_INDEX_NAME = "user_id_1"

# Each document expires at its own expire_date: expireAfterSeconds is 0.
TTL_INDEX = IndexModel([(TTL_FIELD, ASCENDING)], name=TTL_INDEX_NAME, expireAfterSeconds=0)
# Only sessions of logged-in users carry user_id: a sparse index stays small.
USER_INDEX = IndexModel([(USER_FIELD, ASCENDING)], name=USER_INDEX_NAME, sparse=True)
EXPECTED_INDEXES = [TTL_INDEX, USER_INDEX]

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


@dataclass(frozen=True)
class IndexAction:
    """One change the collection needs, in words an operator understands."""

    kind: str  # "drop", "replace" (a unique TTL-field index), "create", "collmod"
    index_name: str
    description: str
    # For a unique index that blocks new sessions: which one, and why.
    blocking: str = ""


def ensure_indexes(collection: Collection[Any]) -> None:
    """Create the expected indexes if missing.

    The server refuses the whole ``createIndexes`` command for one conflicting
    index (codes 85, 86): the others are then built one by one, so that a
    conflict on one does not cost the rest, and the conflict is raised.

    Raises ``pymongo.errors.PyMongoError`` (``OperationFailure`` for a refusal).
    """
    try:
        collection.create_indexes(EXPECTED_INDEXES)
    except OperationFailure as e:
        if e.code not in INDEX_CONFLICT_CODES:
            raise
        for model in EXPECTED_INDEXES:
            with contextlib.suppress(OperationFailure):  # the conflict is raised below
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
            with pymongo.timeout(AUTO_INDEX_TIMEOUT):
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
    if isinstance(error, OperationFailure):
        return f"code {error.code}: {error}"
    return f"{type(error).__name__}: {error}"


def _advice(error: Exception) -> str:
    """Say what the operator should do about a failed automatic index creation."""
    code = error.code if isinstance(error, OperationFailure) else None
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


def plan_index_changes(collection: Collection[Any]) -> list[IndexAction]:
    """Return the changes that would bring the collection's indexes to the expected shape.

    Unique indexes other than ``_id`` come first: they block new sessions (see
    ``blocking_unique_indexes``) and are dropped, or for one on ``expire_date``
    replaced by the TTL index without a moment without expiry.
    """
    existing = {spec["name"]: spec for spec in collection.list_indexes()}
    actions: list[IndexAction] = []
    for spec in blocking_unique_indexes(existing.values()):
        del existing[spec["name"]]
        problem = describe_unique_index(spec)
        if _key_fields(spec) == [TTL_FIELD]:
            description = f"replace {problem}; by the TTL index {TTL_INDEX_NAME}"
            actions.append(IndexAction("replace", spec["name"], description, problem))
            # The replacement is the expected TTL index: nothing else to plan for it.
            existing[TTL_INDEX_NAME] = {
                "name": TTL_INDEX_NAME,
                "key": {TTL_FIELD: 1},
                "expireAfterSeconds": 0,
            }
        else:
            actions.append(IndexAction("drop", spec["name"], f"drop {problem}", problem))
    ttl = _find_by_key(existing, TTL_FIELD)
    if ttl is None:
        actions.append(IndexAction("create", TTL_INDEX_NAME, f"create TTL index on {TTL_FIELD}"))
    elif ttl.get("expireAfterSeconds") != 0:
        current = ttl.get("expireAfterSeconds")
        what = "not a TTL index" if current is None else f"expireAfterSeconds={current}"
        actions.append(
            IndexAction(
                "collmod",
                ttl["name"],
                f"set expireAfterSeconds=0 on index {ttl['name']} ({what})",
            )
        )
    if _find_by_key(existing, USER_FIELD) is None:
        actions.append(IndexAction("create", USER_INDEX_NAME, f"create index on {USER_FIELD}"))
    return actions


def apply_index_changes(collection: Collection[Any], actions: list[IndexAction]) -> list[str]:
    """Apply ``actions`` and return one line per change saying how it was made."""
    done: list[str] = []
    for action in actions:
        if action.kind == "drop":
            collection.drop_index(action.index_name)
            done.append(f"dropped {action.blocking}")
        elif action.kind == "replace":
            done.append(
                _replace_through_bridge(collection, action.index_name, "since it was unique")
            )
        elif action.kind == "create":
            model = TTL_INDEX if action.index_name == TTL_INDEX_NAME else USER_INDEX
            collection.create_indexes([model])
            done.append(f"created index {action.index_name}: {action.description}")
        elif action.kind == "collmod":
            done.append(_set_ttl_to_zero(collection, action.index_name))
    return done


def _set_ttl_to_zero(collection: Collection[Any], index_name: str) -> str:
    """Make the expire_date index a TTL index of 0 s, without a window with no expiry."""
    try:
        collection.database.command(
            "collMod",
            collection.name,
            index={"name": index_name, "expireAfterSeconds": 0},
        )
        return f"changed index {index_name} in place with collMod: expireAfterSeconds=0"
    except OperationFailure as e:
        return _replace_through_bridge(
            collection, index_name, f"since collMod was refused: {e.code}"
        )


def _replace_through_bridge(collection: Collection[Any], index_name: str, reason: str) -> str:
    """Replace the expire_date index ``index_name`` by TTL_INDEX, expiring all along."""
    # Build a second TTL index on the same field first, distinguished by a
    # collation (dates ignore it), so documents keep expiring while the old one
    # is swapped.
    bridge = IndexModel(
        [(TTL_FIELD, ASCENDING)],
        name=BRIDGE_INDEX_NAME,
        expireAfterSeconds=0,
        collation={"locale": "en"},
    )
    collection.create_indexes([bridge])
    collection.drop_index(index_name)
    collection.create_indexes([TTL_INDEX])
    collection.drop_index(BRIDGE_INDEX_NAME)
    return (
        f"replaced index {index_name} with {TTL_INDEX_NAME} (expireAfterSeconds=0) "
        f"through a bridge TTL index, {reason}"
    )


def seed_ttl_index(collection: Collection[Any]) -> dict[str, Any] | None:
    """Return the seed package's TTL index on creation_date, if the collection has one."""
    existing = {spec["name"]: spec for spec in collection.list_indexes()}
    return _find_by_key(existing, SEED_TTL_FIELD)


def _find_by_key(existing: dict[str, Any], field: str) -> dict[str, Any] | None:
    for spec in existing.values():
        if list(spec["key"].keys()) == [field] and "collation" not in spec:
            return dict(spec)
    return None


def _key_fields(spec: dict[str, Any]) -> list[str]:
    return list(spec["key"].keys())


def blocking_unique_indexes(specs: Any) -> list[dict[str, Any]]:
    """Return the unique indexes, among index ``specs``, that can refuse a new session.

    Only the unique ``_id`` decides which sessions exist (Django's contract for
    create() is "a duplicate means pick another key"). Any other unique index
    refuses a valid session sooner or later: on a field the documents lack (the
    ``session_key`` index of django-mongo-sessions 0.x), every document after the
    first is a duplicate on null; on ``user_id``, a user's second session; on
    ``expire_date``, two sessions ending in the same millisecond. Harmless are a
    key that contains ``_id``, and a sparse index whose fields the documents never
    have (they are not in it).
    """
    blocking = []
    for spec in specs:
        if not spec.get("unique") or spec["name"] == "_id_":
            continue
        fields = _key_fields(spec)
        if "_id" in fields:
            continue
        if spec.get("sparse") and not DOCUMENT_FIELDS & set(fields):
            continue
        blocking.append(dict(spec))
    return blocking


def describe_unique_index(spec: dict[str, Any]) -> str:
    """Say which unique index ``spec`` is and why it blocks new sessions."""
    fields = _key_fields(spec)
    text = f"unique index {spec['name']} on {', '.join(fields)}"
    if fields == [SEED_KEY_FIELD]:
        text += " (left by django-mongo-sessions 0.x)"
    missing = [field for field in fields if field not in DOCUMENT_FIELDS]
    if missing and not spec.get("sparse"):
        return (
            f"{text}: sessions have no {', '.join(missing)}, so every new session after "
            "the first is a duplicate on null"
        )
    return f"{text}: only _id may be unique, two sessions with the same {', '.join(fields)} collide"


def duplicate_key_index(error: DuplicateKeyError | dict[str, Any]) -> tuple[str | None, list[str]]:
    """Return the name and key fields of the index a duplicate-key error is about."""
    details = error if isinstance(error, dict) else (error.details or {})
    pattern = details.get("keyPattern")
    fields = list(pattern) if isinstance(pattern, dict) else []
    message = str(details.get("errmsg") or ("" if isinstance(error, dict) else error))
    match = re.search(r"index: (\S+) dup key", message)
    return (match.group(1) if match else None), fields


def is_key_collision(error: DuplicateKeyError | dict[str, Any]) -> bool:
    """Return whether a duplicate-key error is on _id (a session key already taken)."""
    name, fields = duplicate_key_index(error)
    if fields:
        return fields == ["_id"]
    # No keyPattern (servers before 4.2): the index name tells.
    return name in (None, "_id_")


def blocking_index_error(
    operation: str, error: DuplicateKeyError | dict[str, Any]
) -> SessionStoreError:
    """Return the error for a write refused by a unique index other than _id.

    The message names the index, never the duplicated value (it may hold data).
    """
    name, fields = duplicate_key_index(error)
    index = name or "?"
    on = f" on {', '.join(fields)}" if fields else ""
    return SessionStoreError(
        operation,
        f"the unique index {index}{on} of the sessions collection refused the document "
        "(duplicate key, code 11000). Only _id may be unique there: run "
        "'manage.py mongo_sessions_setup' to drop that index.",
    )
