"""MONGO_DB_NAME and MONGO_SESSIONS_COLLECTION against MongoDB's naming rules (E007, E008)."""

from __future__ import annotations

from typing import Any

from ..conf import conf
from .problem import Problem, a_type

# MongoDB's rules for database names (on Linux and macOS servers; Windows also
# forbids *<>:|?), in bytes of UTF-8.
INVALID_DB_NAME_CHARS = frozenset('/\\. "$\x00')
MAX_DB_NAME_BYTES = 63
# MongoDB 4.4+: "database.collection" is at most 255 bytes.
MAX_NAMESPACE_BYTES = 255
DB_NAME_HINT = 'Use 1 to 63 bytes without / \\ . " $, spaces or NUL.'


def names_problems(url_database: str | None) -> list[Problem]:
    """Return the problems of the database and collection names.

    ``url_database`` is the database the URL names in its path, if any: it is
    the one the namespace length is measured with.
    """
    problems: list[Problem] = []
    db_name = conf.MONGO_DB_NAME
    reason = invalid_db_name(db_name)
    if reason:
        problems.append(
            Problem(
                id="mongo_sessions.E007",
                setting="MONGO_DB_NAME",
                message=f"MONGO_DB_NAME {db_name!r} is not a valid MongoDB database name: {reason}",
                hint=DB_NAME_HINT,
            )
        )
    name = conf.MONGO_SESSIONS_COLLECTION
    reason = _invalid_collection_name(name)
    if reason is None and isinstance(db_name, str):
        namespace = f"{url_database or db_name}.{name}"
        if len(namespace.encode()) > MAX_NAMESPACE_BYTES:
            reason = f"the namespace {namespace!r} is over {MAX_NAMESPACE_BYTES} bytes"
    if reason:
        problems.append(
            Problem(
                id="mongo_sessions.E008",
                setting="MONGO_SESSIONS_COLLECTION",
                message=f"MONGO_SESSIONS_COLLECTION {name!r} is not a valid MongoDB collection "
                f"name: {reason}",
                hint="Use a non-empty name without $ or NUL, not starting with 'system.', "
                "without empty parts ('a..b', '.a', 'a.'), and with 'database.collection' "
                "at most 255 bytes.",
            )
        )
    return problems


def invalid_db_name(name: Any) -> str | None:
    """Return why ``name`` is not a valid MongoDB database name, or None if it is."""
    if not isinstance(name, str) or not name:
        return _no_name(name)
    if len(name.encode()) > MAX_DB_NAME_BYTES:
        return f"it is over {MAX_DB_NAME_BYTES} bytes"
    bad = sorted(INVALID_DB_NAME_CHARS & set(name))
    if bad:
        return f"it contains {', '.join(repr(c) for c in bad)}"
    return None


def _invalid_collection_name(name: Any) -> str | None:
    if not isinstance(name, str) or not name:
        return _no_name(name)
    if "$" in name or "\x00" in name:
        return "it contains '$' or NUL"
    if name.startswith("system."):
        return "names starting with 'system.' are reserved"
    if name.startswith(".") or name.endswith(".") or ".." in name:
        return "it has an empty part (a leading, trailing or double '.')"
    return None


def _no_name(name: Any) -> str:
    """Say why ``name``, not a string or an empty one, is no name at all."""
    return f"it is {a_type(name)}, not a string" if not isinstance(name, str) else "it is empty"
