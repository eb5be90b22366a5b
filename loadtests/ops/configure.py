"""Django configured in this process for every engine ``ops`` compares, and the cleanup after.

:func:`configure_django` sets up this process for all of them at once (one
``settings.configure()``: the cache on Redis or local memory, the default
database on PostgreSQL or SQLite, and, where installed, a ``mongodb`` database
on django-mongodb-backend against the same MongoDB server as mongo_sessions);
:func:`cleanup` removes what they stored.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Any

from ..matrix import postgres_database, redis_cache
from .engines import DMB_DATABASE, OURS, Engine


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
