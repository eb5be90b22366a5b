"""The indexes of the sessions collection: expected shape, creation and repair."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.collection import Collection
from pymongo.errors import OperationFailure

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

# Codes that mean "an index of this key already exists with other options".
INDEX_CONFLICT_CODES = frozenset({85, 86})
UNAUTHORIZED_CODE = 13


@dataclass(frozen=True)
class IndexAction:
    """One change the collection needs, in words an operator understands."""

    kind: str  # "create", "collmod", "replace"
    index_name: str
    description: str


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
    """Return the changes that would bring the collection's indexes to the expected shape."""
    existing = {spec["name"]: spec for spec in collection.list_indexes()}
    actions: list[IndexAction] = []
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
        if action.kind == "create":
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
        collmod_error = e
    # collMod refused (an old server, or an index that is not TTL at all): build
    # a second TTL index on the same field first, distinguished by a collation
    # (dates ignore it), so documents keep expiring while the old one is swapped.
    bridge = IndexModel(
        [(TTL_FIELD, ASCENDING)],
        name=f"{TTL_INDEX_NAME}_bridge",
        expireAfterSeconds=0,
        collation={"locale": "en"},
    )
    collection.create_indexes([bridge])
    collection.drop_index(index_name)
    collection.create_indexes([TTL_INDEX])
    collection.drop_index(f"{TTL_INDEX_NAME}_bridge")
    return (
        f"replaced index {index_name} with {TTL_INDEX_NAME} (expireAfterSeconds=0) "
        f"through a bridge TTL index, since collMod was refused: {collmod_error.code}"
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
