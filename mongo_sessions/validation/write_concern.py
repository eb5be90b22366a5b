"""Unacknowledged writes (w=0), which the session store cannot work with (E019).

A save must know whether it matched a document and a create whether the
unique ``_id`` refused it: with ``w=0`` pymongo has no answer
(``InvalidOperation`` on ``matched_count``). The write concern can come from
the URL, ``MONGO_SESSIONS_CLIENT_OPTIONS`` or a client the user gives; the
package never changes a client it is given, so it refuses it instead.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from .. import driver
from ..conf import DEFAULT_CLIENT_OPTIONS, conf
from .problem import Problem
from .url import SCHEMES, without_srv

if TYPE_CHECKING:
    from pymongo import MongoClient

CHECK_ID = "mongo_sessions.E019"


def unacknowledged_problem(client: Any, setting: str) -> Problem | None:
    """Return E019 naming ``setting`` if ``client`` (sync or async) writes with w=0."""
    if client.write_concern.acknowledged:
        return None
    return Problem(
        id=CHECK_ID,
        setting=setting,
        message=f"{setting} asks for unacknowledged writes (w=0): the session store needs "
        "to know whether each write matched a session",
        hint="Remove w=0 (the default w=1 or w='majority' work); mongo_sessions never "
        "changes a client you give it, so give one without w=0.",
    )


def own_client_setting() -> str:
    """Return the setting a write concern of the package's own client comes from."""
    options = conf.MONGO_SESSIONS_CLIENT_OPTIONS
    if isinstance(options, dict) and "w" in {str(name).lower() for name in options}:
        return "MONGO_SESSIONS_CLIENT_OPTIONS"  # keyword arguments win over the URL
    return "MONGO_SESSIONS_URL" if conf.MONGO_SESSIONS_URL else "MONGO_HOST"


def own_client_problems() -> list[Problem]:
    """Return E019 if the client the package would build writes with w=0.

    Call it only once the URL and the options are valid: an unconnected client
    is built from them (no I/O; a ``mongodb+srv://`` URL without its lookup).
    """
    url = conf.MONGO_SESSIONS_URL
    options = conf.MONGO_SESSIONS_CLIENT_OPTIONS
    host: Any = without_srv(url) if isinstance(url, str) and url.startswith(SCHEMES) else None
    arguments: dict[str, Any] = {"host": host or conf.MONGO_HOST}
    if host is None:
        arguments["port"] = conf.MONGO_PORT
    merged = {**DEFAULT_CLIENT_OPTIONS, **(options if isinstance(options, dict) else {})}
    merged = {name: value for name, value in merged.items() if name != "event_listeners"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client: MongoClient[dict[str, Any]] = driver.pymongo.MongoClient(
                **arguments, **merged, connect=False
            )
    except Exception:  # reported by the URL, host or options checks
        return []
    try:
        problem = unacknowledged_problem(client, own_client_setting())
    finally:
        client.close()
    return [problem] if problem is not None else []
