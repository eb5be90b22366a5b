"""The indexes of the sessions collection: expected shape, creation and repair."""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pymongo import ASCENDING, IndexModel
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError, OperationFailure

from .exceptions import SessionStoreError

if TYPE_CHECKING:
    from pymongo.asynchronous.collection import AsyncCollection

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


@dataclass(frozen=True)
class IndexAction:
    """One change the collection needs, in words an operator understands."""

    kind: str  # "drop", "replace" (a unique TTL-field index), "create", "collmod"
    index_name: str
    description: str
    # For a unique index that blocks new sessions: which one, and why.
    blocking: str = ""


def ensure_indexes(collection: Collection[Any]) -> None:
    """Create the expected indexes if missing; log instead of failing on conflicts."""
    try:
        collection.create_indexes(EXPECTED_INDEXES)
    except OperationFailure as e:
        _log_auto_index_failure(collection.full_name, e)
        # The server refuses the whole command for one conflicting index: build
        # the others one by one, so that a conflict on one does not cost the rest.
        for model in EXPECTED_INDEXES:
            with contextlib.suppress(OperationFailure):  # already reported above
                collection.create_indexes([model])


async def aensure_indexes(collection: AsyncCollection[Any]) -> None:
    """Create the expected indexes if missing, from async code."""
    try:
        await collection.create_indexes(EXPECTED_INDEXES)
    except OperationFailure as e:
        _log_auto_index_failure(collection.full_name, e)
        for model in EXPECTED_INDEXES:
            with contextlib.suppress(OperationFailure):  # already reported above
                await collection.create_indexes([model])


def _log_auto_index_failure(full_name: str, error: OperationFailure) -> None:
    # Requests must go on: the TTL index is a housekeeping concern, not a
    # correctness one (reads already ignore expired documents).
    if error.code == UNAUTHORIZED_CODE:
        logger.warning(
            "mongo_sessions cannot create indexes on %s (not authorized). Create them with "
            "'manage.py mongo_sessions_setup' as a privileged user and set "
            "MONGO_SESSIONS_AUTO_INDEX = False.",
            full_name,
        )
    elif error.code in INDEX_CONFLICT_CODES:
        logger.warning(
            "An index on %s conflicts with the one mongo_sessions needs; run "
            "'manage.py mongo_sessions_setup' to repair it (%s).",
            full_name,
            error,
        )
    else:
        raise error


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
