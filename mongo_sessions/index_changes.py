"""Changes that bring the sessions collection's indexes to the expected shape.

``plan_index_changes`` says what is to change, in words an operator
understands (``manage.py check --deploy`` and ``mongo_sessions_setup --check``
report it); ``apply_index_changes`` makes the changes (``mongo_sessions_setup``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.collection import Collection
from pymongo.errors import OperationFailure

from .indexes import (
    BRIDGE_INDEX_NAME,
    SEED_TTL_FIELD,
    TTL_FIELD,
    TTL_INDEX_NAME,
    USER_FIELD,
    USER_INDEX_NAME,
    ttl_index,
    user_index,
)
from .unique_indexes import blocking_unique_indexes, describe_unique_index, key_fields


@dataclass(frozen=True)
class IndexAction:
    """One change the collection needs, in words an operator understands."""

    kind: str  # "drop", "replace" (a unique TTL-field index), "create", "collmod"
    index_name: str
    description: str
    # For a unique index that blocks new sessions: which one, and why.
    blocking: str = ""


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
        if key_fields(spec) == [TTL_FIELD]:
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
            model = ttl_index() if action.index_name == TTL_INDEX_NAME else user_index()
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
    """Replace the expire_date index ``index_name`` by ttl_index(), expiring all along."""
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
    collection.create_indexes([ttl_index()])
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
