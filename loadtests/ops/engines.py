"""The engines ``ops`` compares, configured together in one process, and how to count them.

An :class:`Engine` is Django's SessionStore class of one engine plus hooks:
``count`` runs one call and returns the commands it sent to its store (MongoDB
commands, Redis commands, SQL statements or local-memory cache calls);
``counting_on``/``counting_off`` install and remove the counting hooks, so
that timed calls run without them; ``stored_bytes`` says how many bytes one
session takes in the store. Here: mongo_sessions and Django's database engine
on django-mongodb-backend, both counted by pymongo command monitoring; Django's
cache and database engines are in ``django_engines``, the configuration of
Django for all of them in ``configure``; ``single.build_engines`` builds them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mongo_sessions.testing import CommandCounter

#: The keys of mongo_sessions' engines: the formats it can store.
OURS = ("mongo_sessions", "mongo_sessions_document")
#: The engines the package is compared with, in the order of the tables.
REFERENCES = ("cache", "db", "db_mongodb")
#: The MongoDB database of django-mongodb-backend's sessions (same server).
DMB_DATABASE = "loadtests_dmb"


@dataclass
class Engine:
    """One session engine and how to count what a call sends to its store."""

    key: str  # one of OURS or REFERENCES
    label: str  # e.g. "cache (Redis)"
    unit: str  # what is counted: "MongoDB commands", "Redis commands", ...
    server: str  # what the figures were measured against
    store_class: Any
    count: Callable[[Callable[[], Any]], list[str]]  # run a call, return its commands
    stored_bytes: Callable[[str], int]  # bytes one session takes in the store, by key
    bytes_unit: str  # how stored_bytes counts
    counting_on: Callable[[], None] = lambda: None
    counting_off: Callable[[], None] = lambda: None
    created_keys: list[str] = field(default_factory=list)


def recorded_in(record: list[str]) -> Callable[[Callable[[], Any]], list[str]]:
    """A ``count`` hook for a hook that appends to ``record``: what one call appended."""

    def count(call: Callable[[], Any]) -> list[str]:
        record.clear()
        call()
        return list(record)

    return count


def mongodb_backend_available() -> str | None:
    """None when django-mongodb-backend can run here, else why not."""
    if importlib.util.find_spec("django_mongodb_backend") is None:
        return (
            "django-mongodb-backend is not installed here (it needs Django 6.1: "
            'pip install "django~=6.1.0" "django-mongodb-backend~=6.1.0"), so Django\'s '
            "database engine on MongoDB is not measured."
        )
    return None


# --- mongo_sessions ---------------------------------------------------------------------


def mongo_engine(
    listener: CommandCounter, server: str, key: str, label: str, store_class: Any
) -> Engine:
    """mongo_sessions, its commands counted by ``listener`` (pymongo command monitoring)."""
    import bson
    from django.conf import settings
    from django.test.signals import setting_changed

    from mongo_sessions import connection

    def set_listeners(listeners: list[Any]) -> None:
        settings.MONGO_SESSIONS_CLIENT_OPTIONS = {"event_listeners": listeners}
        # What override_settings() sends: the package rebuilds its client.
        setting_changed.send(
            sender=type(settings),
            setting="MONGO_SESSIONS_CLIENT_OPTIONS",
            value=settings.MONGO_SESSIONS_CLIENT_OPTIONS,
            enter=True,
        )

    def stored_bytes(session_key: str) -> int:
        document = connection.get_collection().find_one({"_id": session_key})
        return len(bson.encode(document)) if document else 0

    return _monitored(key, label, server, store_class, listener, set_listeners, stored_bytes)


def mongodb_backend_engine(listener: CommandCounter, server: str) -> Engine:
    """Django's database engine on django-mongodb-backend, its commands counted by ``listener``."""
    import bson
    from django.db import connections

    from .dmb_sessions.models import ALIAS, SessionStore

    connection = connections[ALIAS]

    def set_listeners(listeners: list[Any]) -> None:
        # The backend passes OPTIONS to its MongoClient: a new client sees the change.
        connection.settings_dict["OPTIONS"]["event_listeners"] = listeners
        connection.close_pool()

    def stored_bytes(session_key: str) -> int:
        model = SessionStore.get_model_class()
        column = model._meta.pk.column  # "session_key": the backend keeps its own _id
        document = connection.get_collection(model._meta.db_table).find_one({column: session_key})
        return len(bson.encode(document)) if document else 0

    return _monitored(
        "db_mongodb",
        "db (django-mongodb-backend)",
        f"{server}, database {DMB_DATABASE} (django-mongodb-backend)",
        SessionStore,
        listener,
        set_listeners,
        stored_bytes,
    )


def _monitored(
    key: str,
    label: str,
    server: str,
    store_class: Any,
    listener: CommandCounter,
    set_listeners: Callable[[list[Any]], None],
    stored_bytes: Callable[[str], int],
) -> Engine:
    """An engine on MongoDB whose commands ``listener`` counts while ``set_listeners`` has it."""
    return Engine(
        key=key,
        label=label,
        unit="MongoDB commands (pymongo command monitoring)",
        server=server,
        store_class=store_class,
        count=recorded_in(listener.commands),
        stored_bytes=stored_bytes,
        bytes_unit="BSON size of the session's document",
        counting_on=lambda: set_listeners([listener]),
        counting_off=lambda: set_listeners([]),
    )
