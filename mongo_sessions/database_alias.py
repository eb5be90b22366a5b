"""``MONGO_SESSIONS_DATABASE_ALIAS``: sessions on a ``DATABASES`` entry of django-mongodb-backend.

With ``MONGO_SESSIONS_DATABASE_ALIAS = "default"`` MongoDB is configured once, in
``DATABASES``: the session store uses that connection's ``MongoClient`` (the
one django-mongodb-backend keeps per alias and shares between threads) and its
database (``NAME``), with the collection ``MONGO_SESSIONS_COLLECTION``. The
async client is an ``AsyncMongoClient`` built from the same connection
parameters (``HOST``, ``PORT``, ``USER``, ``PASSWORD``, ``OPTIONS``).

Nothing here needs Django's database connection to be open, so the first use
may be async: Django forbids opening a connection on an event loop
(``SynchronousOnlyOperation``), and the backend's client is then fetched on a
helper thread (building a ``MongoClient`` does no I/O).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.utils import load_backend

from . import driver
from .conf import conf

if TYPE_CHECKING:
    from pymongo import MongoClient

SETTING = "MONGO_SESSIONS_DATABASE_ALIAS"
BACKEND = "django_mongodb_backend"
STYLE = "database-alias"
CHECK_ID = "mongo_sessions.E040"
HINT = (
    "Name a DATABASES entry whose ENGINE is 'django_mongodb_backend', or remove "
    f"{SETTING} and configure the connection with MONGO_SESSIONS_URL."
)


@dataclass(frozen=True)
class AliasConnection:
    """What a ``DATABASES`` alias gives the session store."""

    client: MongoClient[dict[str, Any]]
    database_name: str
    # Keyword arguments of an AsyncMongoClient to the same deployment.
    async_client_kwargs: dict[str, Any]


def engine_problem(alias: Any) -> str | None:
    """Return why ``alias`` cannot hold sessions, or None for a django-mongodb-backend entry.

    Reads the settings only: no connection is opened.
    """
    if not isinstance(alias, str) or not alias:
        return f"it must be the name of a DATABASES entry, not {alias!r}"
    if alias not in connections.settings:
        return f"DATABASES has no entry {alias!r} (it has {', '.join(connections.settings)})"
    engine = connections.settings[alias].get("ENGINE", "")
    try:
        driver.import_all()  # before a module that imports pymongo's own (see driver.py)
        # Optional, untyped, and only importable with the Django version it matches.
        from django_mongodb_backend.base import (  # type: ignore[import-not-found,import-untyped,unused-ignore]
            DatabaseWrapper as MongoWrapper,
        )
    except ImportError:
        return "django-mongodb-backend is not installed (pip install django-mongodb-backend)"
    try:
        wrapper_class = load_backend(engine).DatabaseWrapper
    except ImproperlyConfigured as e:
        return f"its ENGINE {engine!r} cannot be loaded: {e}"
    if not issubclass(wrapper_class, MongoWrapper):
        return f"its ENGINE is {engine!r}, not {BACKEND!r}"
    return None


def _pooled_client(alias: str) -> MongoClient[dict[str, Any]]:
    wrapper = connections[alias]
    # django-mongodb-backend keeps one MongoClient per alias for all threads and
    # returns it here; connect() would also query the server version, unbounded.
    client: MongoClient[dict[str, Any]] = wrapper.get_new_connection(
        wrapper.get_connection_params()
    )
    return client


def _backend_client(alias: str) -> MongoClient[dict[str, Any]]:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _pooled_client(alias)
    # On an event loop Django refuses the call (SynchronousOnlyOperation); it does
    # no I/O, so make it on a helper thread, as sync_to_async would.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mongo_sessions") as pool:
        return pool.submit(_pooled_client, alias).result(timeout=conf.MONGO_SESSIONS_TIMEOUT)


def resolve(alias: str) -> AliasConnection:
    """Return the client, database name and async client options of the ``DATABASES`` alias.

    Raises ImproperlyConfigured naming ``MONGO_SESSIONS_DATABASE_ALIAS`` when the
    alias is missing or not served by django-mongodb-backend. Works from sync
    and async code; does no network I/O (the client connects on first use).
    """
    problem = engine_problem(alias)
    if problem is not None:
        raise ImproperlyConfigured(
            f"mongo_sessions: {SETTING} = {alias!r} cannot be used: {problem} ({CHECK_ID}). {HINT}"
        )
    wrapper = connections[alias]
    params: dict[str, Any] = dict(wrapper.get_connection_params())
    return AliasConnection(
        client=_backend_client(alias),
        database_name=str(wrapper.settings_dict["NAME"]),
        async_client_kwargs=params,
    )
