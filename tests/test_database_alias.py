"""MONGO_SESSIONS_DATABASE_ALIAS: sessions on a DATABASES entry of django-mongodb-backend.

These tests need django-mongodb-backend, which needs Django 6.1 (and so Python
3.12+): the CI entry with Django 6.1 installs it. Elsewhere they are skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

try:
    import django_mongodb_backend  # noqa: F401
except ImportError:
    pytest.skip(
        "django-mongodb-backend is not installed (it needs Django 6.1 and Python 3.12+; "
        "the CI entry with Django 6.1 installs it)",
        allow_module_level=True,
    )

from django.db import connections

from mongo_sessions import connection
from mongo_sessions.checks import check_settings
from mongo_sessions.session import SessionStore
from mongo_sessions.testing import CommandCounter
from tests.servers import REPO_ROOT, demo_env
from tests.support import TEST_DB

ALIAS = "mongodb"


@pytest.fixture
def alias_entry(settings: Any, mongo_url: str, django_db_blocker: Any) -> Iterator[dict[str, Any]]:
    """A DATABASES entry of django-mongodb-backend on the test server, for this test only."""
    counter = CommandCounter()
    entry = connections.configure_settings(
        {
            "default": {"ENGINE": "django.db.backends.dummy"},  # configure_settings wants one
            ALIAS: {
                "ENGINE": "django_mongodb_backend",
                "HOST": mongo_url,
                "NAME": TEST_DB,
                "OPTIONS": {"event_listeners": [counter], "serverSelectionTimeoutMS": 5000},
            },
        }
    )[ALIAS]
    entry["COUNTER"] = counter  # for the tests' eyes only; the backend ignores it
    connections.settings[ALIAS] = entry
    settings.MONGO_SESSIONS_URL = None
    settings.MONGO_SESSIONS_DATABASE_ALIAS = ALIAS
    connection.reset()
    yield entry
    connection.reset()
    with django_db_blocker.unblock():
        connections[ALIAS].close_pool()
    del connections[ALIAS]
    del connections.settings[ALIAS]


def backend_client(django_db_blocker: Any) -> Any:
    """The MongoClient that django-mongodb-backend's connection of the alias uses."""
    with django_db_blocker.unblock():
        connections[ALIAS].ensure_connection()
        return connections[ALIAS].connection


def test_sessions_use_the_backends_client_and_database(
    alias_entry: dict[str, Any], sessions_collection: Any, django_db_blocker: Any
) -> None:
    session = SessionStore()
    session["cart"] = ["apple"]
    session.save()
    assert SessionStore(session.session_key).load() == {"cart": ["apple"]}
    # The database of DATABASES[alias]["NAME"], the collection MONGO_SESSIONS_COLLECTION.
    assert sessions_collection.find_one({"_id": session.session_key}) is not None
    assert alias_entry["COUNTER"].commands[-2:] == ["insert", "find"]
    assert connection.get_target().client is backend_client(django_db_blocker)
    assert connection.describe_connection() == {
        "style": "database-alias",
        "address": connection.describe_connection()["address"],
        "database": TEST_DB,
        "collection": sessions_collection.name,
    }
    assert connection.describe_connection()["address"].startswith("127.0.0.1:")


def test_the_database_name_may_come_from_the_host_url(
    alias_entry: dict[str, Any], mongo_url: str, sessions_collection: Any
) -> None:
    alias_entry["NAME"] = TEST_DB
    alias_entry["HOST"] = mongo_url.rstrip("/") + f"/{TEST_DB}"
    session = SessionStore()
    session["a"] = 1
    session.save()
    assert sessions_collection.find_one({"_id": session.session_key}) is not None


async def test_first_use_async(alias_entry: dict[str, Any], sessions_collection: Any) -> None:
    """No SynchronousOnlyOperation: the first use of the store is on an event loop."""
    connections[ALIAS].close_pool()  # no pooled client yet, as in a fresh process
    session = SessionStore()
    await session.aset("cart", ["apple"])
    await session.asave()
    again = SessionStore(session.session_key)
    assert await again.aget("cart") == ["apple"]
    assert sessions_collection.find_one({"_id": session.session_key}) is not None
    target = connection.get_target()
    assert target.style == "database-alias"
    # The async client was built from the alias's settings: its listener saw the commands.
    assert alias_entry["COUNTER"].commands[-2:] == ["insert", "find"]
    assert target.client is type(connections[ALIAS])._connection_pools[ALIAS]


def test_the_backends_client_is_never_closed_by_the_package(
    alias_entry: dict[str, Any], django_db_blocker: Any
) -> None:
    SessionStore().create()
    client = backend_client(django_db_blocker)
    connection.reset()
    client.admin.command("ping")  # still open
    SessionStore().create()
    assert connection.get_target().client is client


def test_checks_accept_the_alias(alias_entry: dict[str, Any]) -> None:
    assert check_settings() == []


def test_checks_report_another_connection_setting(
    settings: Any, alias_entry: dict[str, Any], mongo_url: str
) -> None:
    settings.MONGO_SESSIONS_URL = mongo_url
    assert [m.id for m in check_settings()] == ["mongo_sessions.E041"]


def test_a_site_all_on_mongodb(mongo_url: str, mongo_client: Any, tmp_path: Path) -> None:
    """Users on django-mongodb-backend, sessions on the same connection: migrate, log in, async."""
    database = f"mdb_site_{uuid.uuid4().hex[:8]}"
    (tmp_path / "mdb_migrations").mkdir()
    (tmp_path / "mdb_migrations" / "__init__.py").write_text("")
    env = demo_env(
        DJANGO_SETTINGS_MODULE="tests.mongodb_site.settings",
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(tmp_path)]),
        MDB_SITE_URL=mongo_url,
        MDB_SITE_DB=database,
    )

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True,
            timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
        return done.stdout

    try:
        run("-m", "django", "makemigrations", "auth", "contenttypes")
        run("-m", "django", "migrate")  # permissions and content types are created too
        synced = json.loads(run("-m", "tests.mongodb_site.scenario", "sync").splitlines()[-1])
        assert synced["logged_in"] is True
        assert synced["listed"] == 1
        assert synced["revoked"] == 1
        assert synced["connection"]["style"] == "database-alias"
        assert synced["connection"]["database"] == database
        assert mongo_client[database]["auth_permission"].count_documents({}) > 0
        first_async = json.loads(run("-m", "tests.mongodb_site.scenario", "async").splitlines()[-1])
        assert first_async == {"loaded": ["apple"], "user_listed": 1, "style": "database-alias"}
        assert mongo_client[database]["mongo_sessions"].count_documents({}) == 2
    finally:
        mongo_client.drop_database(database)
