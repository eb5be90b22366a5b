"""Unique indexes other than ``_id``: which ones refuse new sessions, and their errors.

Only the unique ``_id`` decides which sessions exist; the duplicate-key errors
of any other unique index are reported as such, naming the index, never the
duplicated value.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .exceptions import SessionStoreError
from .indexes import DOCUMENT_FIELDS, SEED_KEY_FIELD

if TYPE_CHECKING:
    from pymongo.errors import DuplicateKeyError


def key_fields(spec: dict[str, Any]) -> list[str]:
    """Return the fields of index ``spec``'s key, in order."""
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
        fields = key_fields(spec)
        if "_id" in fields:
            continue
        if spec.get("sparse") and not DOCUMENT_FIELDS & set(fields):
            continue
        blocking.append(dict(spec))
    return blocking


def describe_unique_index(spec: dict[str, Any]) -> str:
    """Say which unique index ``spec`` is and why it blocks new sessions."""
    fields = key_fields(spec)
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
