"""The engines ``ops`` compares, configured together in one process, and how to count them.

An :class:`Engine` is Django's SessionStore class of one engine plus hooks:
``count`` runs one call and returns the commands it sent to its store (MongoDB
commands, Redis commands, SQL statements or local-memory cache calls);
``counting_on``/``counting_off`` install and remove the counting hooks, so
that timed calls run without them; ``stored_bytes`` says how many bytes one
session takes in the store. :func:`configure_django` sets up this process for
all of them at once (one ``settings.configure()``: the cache on Redis or local
memory, the default database on PostgreSQL or SQLite, and, where installed,
a ``mongodb`` database on django-mongodb-backend against the same MongoDB
server as mongo_sessions); :func:`build_engines` returns them;
:func:`cleanup` removes what they stored.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mongo_sessions.testing import CommandCounter

from ..matrix import postgres_database, redis_cache
from ..stores import describe_postgres, describe_redis, describe_sqlite

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


# --- Django's cache engine ---------------------------------------------------------------


def cache_engine(redis_url: str | None) -> Engine:
    from django.contrib.sessions.backends.cache import SessionStore
    from django.core.cache import caches

    def full_key(session_key: str) -> str:
        cache = caches["default"]
        return str(cache.make_key(SessionStore.cache_key_prefix + session_key))

    if redis_url:
        import redis

        stats_client = redis.Redis.from_url(redis_url, socket_timeout=10)

        def count(call: Callable[[], Any]) -> list[str]:
            before = _commandstats(stats_client)
            call()
            after = _commandstats(stats_client)
            names: list[str] = []
            for name, calls in sorted(after.items()):
                names += [name.upper()] * (calls - before.get(name, 0))
            return names

        def redis_bytes(session_key: str) -> int:
            key = full_key(session_key)
            return len(key.encode()) + int(stats_client.strlen(key))

        return Engine(
            key="cache",
            label="cache (Redis)",
            unit="Redis commands (server INFO commandstats, listed alphabetically)",
            server=describe_redis(redis_url),
            store_class=SessionStore,
            count=count,
            stored_bytes=redis_bytes,
            bytes_unit="Redis key and value (STRLEN), in bytes",
        )

    calls: list[str] = []
    methods = ("get", "set", "add", "delete", "has_key", "touch", "get_many", "set_many")

    def on() -> None:
        cache = caches["default"]
        for name in methods:
            original = getattr(cache, name)

            def wrapper(*args: Any, _name: str = name, _f: Any = original, **kw: Any) -> Any:
                calls.append(f"cache.{_name}")
                return _f(*args, **kw)

            setattr(cache, name, wrapper)

    def off() -> None:
        cache = caches["default"]
        for name in methods:
            with contextlib.suppress(AttributeError):
                delattr(cache, name)

    def locmem_bytes(session_key: str) -> int:
        key = full_key(session_key)
        value = caches["default"]._cache.get(key, b"")
        return len(key.encode()) + len(value)

    return Engine(
        key="cache",
        label="cache (locmem)",
        unit="cache calls (local memory: no server; REDIS_URL not set)",
        server="Django LocMemCache in this process (REDIS_URL not set)",
        store_class=SessionStore,
        count=recorded_in(calls),
        stored_bytes=locmem_bytes,
        bytes_unit="cache key and pickled value, in bytes",
        counting_on=on,
        counting_off=off,
    )


def _commandstats(client: Any) -> dict[str, int]:
    stats = client.info("commandstats")
    out: dict[str, int] = {}
    for key, value in stats.items():
        name = key.removeprefix("cmdstat_")
        if name in ("info", "strlen"):
            continue
        out[name] = int(value["calls"]) if isinstance(value, dict) else 0
    return out


# --- Django's database engine ----------------------------------------------------------------


class SqlRecorder:
    """Record each SQL statement, and the BEGIN/COMMIT around Django's transactions."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.in_transaction = False

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        verb = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"
        connection = context["connection"]
        if verb == "BEGIN":
            self.in_transaction = True
        elif connection.in_atomic_block and not self.in_transaction:
            # psycopg opens the transaction itself before the first statement.
            self.statements.append("BEGIN")
            self.in_transaction = True
        self.statements.append(verb)
        return execute(sql, params, many, context)

    def ended(self, how: str) -> None:
        if self.in_transaction:
            self.statements.append(how)
            self.in_transaction = False


def db_engine(database_url: str | None) -> Engine:
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import connections

    recorder = SqlRecorder()
    connection = connections["default"]
    wrapper_cm: list[Any] = []

    def on() -> None:
        original_commit, original_rollback = connection.commit, connection.rollback

        def commit() -> None:
            original_commit()
            recorder.ended("COMMIT")

        def rollback() -> None:
            original_rollback()
            recorder.ended("ROLLBACK")

        connection.commit = commit  # type: ignore[method-assign]
        connection.rollback = rollback  # type: ignore[method-assign]
        cm = connection.execute_wrapper(recorder)
        cm.__enter__()
        wrapper_cm.append(cm)

    def off() -> None:
        for name in ("commit", "rollback"):
            with contextlib.suppress(AttributeError):
                delattr(connection, name)
        while wrapper_cm:
            wrapper_cm.pop().__exit__(None, None, None)

    if database_url:
        server = describe_postgres(database_url)
        label, unit = "db (PostgreSQL)", "SQL statements incl. BEGIN/COMMIT (PostgreSQL)"
        size_sql = "SELECT pg_column_size(s.*) FROM django_session s WHERE session_key = %s"
        bytes_unit = "the row's size as PostgreSQL reports it (pg_column_size)"
    else:
        server = describe_sqlite("a temporary file in this process; DATABASE_URL not set")
        label, unit = "db (SQLite)", "SQL statements incl. BEGIN/COMMIT (SQLite, no server)"
        size_sql = (
            "SELECT length(CAST(session_key AS BLOB)) + length(CAST(session_data AS BLOB)) "
            "+ length(CAST(expire_date AS BLOB)) FROM django_session WHERE session_key = %s"
        )
        bytes_unit = "the row's three columns, in bytes"

    def row_bytes(session_key: str) -> int:
        with connection.cursor() as cursor:
            cursor.execute(size_sql, [session_key])
            row = cursor.fetchone()
        return int(row[0]) if row else 0

    return Engine(
        key="db",
        label=label,
        unit=unit,
        server=server,
        store_class=SessionStore,
        count=recorded_in(recorder.statements),
        stored_bytes=row_bytes,
        bytes_unit=bytes_unit,
        counting_on=on,
        counting_off=off,
    )


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

    return Engine(
        key="db_mongodb",
        label="db (django-mongodb-backend)",
        unit="MongoDB commands (pymongo command monitoring)",
        server=f"{server}, database {DMB_DATABASE} (django-mongodb-backend)",
        store_class=SessionStore,
        count=recorded_in(listener.commands),
        stored_bytes=stored_bytes,
        bytes_unit="BSON size of the session's document",
        counting_on=lambda: set_listeners([listener]),
        counting_off=lambda: set_listeners([]),
    )


# --- setup and cleanup ----------------------------------------------------------------


def configure_django(mongo_url: str, collection: str, tmp: Path, mongodb_backend: bool) -> None:
    """Configure Django in this process for every engine at once; create the tables."""
    import django
    from django.conf import settings

    redis_url = os.environ.get("REDIS_URL")
    database_url = os.environ.get("DATABASE_URL")
    if redis_url:
        cache = redis_cache(redis_url, KEY_PREFIX=f"loadtests-ops-{secrets.token_hex(4)}")
    else:
        cache = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "ops"}
    databases: dict[str, Any] = {
        "default": postgres_database(database_url)
        if database_url
        else {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp / "ops.sqlite3")}
    }
    apps = ["django.contrib.contenttypes", "django.contrib.sessions"]
    routers = []
    if mongodb_backend:
        databases["mongodb"] = {
            "ENGINE": "django_mongodb_backend",
            "HOST": mongo_url,
            "NAME": DMB_DATABASE,
            "OPTIONS": {},
        }
        apps.append("loadtests.ops.dmb_sessions")
        routers.append("loadtests.ops.dmb_sessions.models.Router")
    settings.configure(
        SECRET_KEY="loadtests-ops-" + secrets.token_hex(16),
        USE_TZ=True,
        INSTALLED_APPS=apps,
        DATABASES=databases,
        DATABASE_ROUTERS=routers,
        CACHES={"default": cache},
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        SESSION_ENGINE="mongo_sessions.session",
        MONGO_SESSIONS_URL=mongo_url,
        MONGO_DB_NAME="loadtests",  # when the URL names no database
        MONGO_SESSIONS_COLLECTION=collection,
        MONGO_SESSIONS_CLIENT_OPTIONS={},
        LOGGING_CONFIG=None,
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", "sessions", verbosity=0, interactive=False)
    if mongodb_backend:
        call_command("migrate", database="mongodb", run_syncdb=True, verbosity=0)


def cleanup(engines: list[Engine]) -> None:
    """Remove what the benchmark stored: its collection, rows and keys."""
    from django.core.cache import caches
    from django.db import connections

    from mongo_sessions import connection

    for engine in engines:
        keys = engine.created_keys
        if engine.key in OURS:
            with contextlib.suppress(Exception):
                connection.get_collection().drop()
        elif engine.key == "cache":
            with contextlib.suppress(Exception):
                prefix = engine.store_class.cache_key_prefix
                caches["default"].delete_many([prefix + k for k in keys])
        elif engine.key in ("db", "db_mongodb"):
            model = engine.store_class.get_model_class()
            with contextlib.suppress(Exception):
                for i in range(0, len(keys), 500):
                    model.objects.filter(session_key__in=keys[i : i + 500]).delete()
    connection.reset()
    with contextlib.suppress(Exception):
        connections.close_all()
