"""Every way to configure the connection, and the lifecycle of the client."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap
import time
import types
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.exceptions import ImproperlyConfigured

from mongo_sessions import connection
from mongo_sessions.exceptions import SessionStoreUnavailable
from mongo_sessions.session import SessionStore
from tests.servers import REPO_ROOT, free_port
from tests.support import OTHER_DB, TEST_DB, requires_async_api


def round_trip() -> str:
    """Save a session through the package and load it back with a new store."""
    session = SessionStore()
    session["style"] = "checked"
    session.save()
    assert SessionStore(session.session_key)["style"] == "checked"
    assert session.session_key is not None
    return session.session_key


def test_url_with_database_in_path(sessions_collection: Any) -> None:
    key = round_trip()
    assert sessions_collection.find_one({"_id": key}) is not None
    assert connection.describe_connection()["style"] == "url"
    assert connection.describe_connection()["database"] == TEST_DB


def test_url_without_database_uses_mongo_db_name(
    settings: Any, mongo_url: str, mongo_client: Any, no_url: None
) -> None:
    settings.MONGO_SESSIONS_URL = mongo_url.rstrip("/") + "/"
    settings.MONGO_DB_NAME = OTHER_DB
    key = round_trip()
    assert mongo_client[OTHER_DB][settings.MONGO_SESSIONS_COLLECTION].find_one({"_id": key})


def test_client_object_with_mongo_db_name(
    settings: Any, user_client: Any, mongo_client: Any, no_url: None
) -> None:
    settings.MONGO_CLIENT = user_client
    settings.MONGO_DB_NAME = OTHER_DB
    key = round_trip()
    assert mongo_client[OTHER_DB][settings.MONGO_SESSIONS_COLLECTION].find_one({"_id": key})
    assert connection.describe_connection()["style"] == "client"
    assert connection.get_target().client is user_client


def test_database_object(settings: Any, user_client: Any, mongo_client: Any, no_url: None) -> None:
    settings.MONGO_CLIENT = user_client[OTHER_DB]
    settings.MONGO_DB_NAME = "ignored_when_a_database_is_given"
    key = round_trip()
    assert mongo_client[OTHER_DB][settings.MONGO_SESSIONS_COLLECTION].find_one({"_id": key})
    assert connection.describe_connection()["style"] == "database"


@pytest.fixture
def dotted_module(user_client: Any) -> Iterator[str]:
    module = types.ModuleType("tests_dotted_mongo")
    module.client = user_client  # type: ignore[attr-defined]
    module.db = user_client[OTHER_DB]  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    yield module.__name__
    del sys.modules[module.__name__]


def test_dotted_path_to_client(
    settings: Any, dotted_module: str, mongo_client: Any, no_url: None
) -> None:
    settings.MONGO_CLIENT = f"{dotted_module}.client"
    settings.MONGO_DB_NAME = OTHER_DB
    key = round_trip()
    assert mongo_client[OTHER_DB][settings.MONGO_SESSIONS_COLLECTION].find_one({"_id": key})
    assert connection.describe_connection()["style"] == "client-path"


def test_dotted_path_to_database(
    settings: Any, dotted_module: str, mongo_client: Any, no_url: None
) -> None:
    settings.MONGO_CLIENT = f"{dotted_module}.db"
    key = round_trip()
    assert mongo_client[OTHER_DB][settings.MONGO_SESSIONS_COLLECTION].find_one({"_id": key})
    assert connection.describe_connection()["style"] == "database-path"


def test_dotted_path_that_does_not_import(settings: Any, no_url: None) -> None:
    settings.MONGO_CLIENT = "tests.nowhere.client"
    with pytest.raises(ImproperlyConfigured, match="cannot be imported"):
        SessionStore().create()


def test_host_port_and_db_name(
    settings: Any, mongo_url: str, mongo_client: Any, no_url: None
) -> None:
    parts = urlsplit(mongo_url)
    if parts.username:
        pytest.skip("MONGO_SESSIONS_TEST_URL has credentials: see test_auth_tls for this style")
    settings.MONGO_HOST = parts.hostname
    settings.MONGO_PORT = parts.port or 27017
    settings.MONGO_DB_NAME = OTHER_DB
    key = round_trip()
    assert mongo_client[OTHER_DB][settings.MONGO_SESSIONS_COLLECTION].find_one({"_id": key})
    description = connection.describe_connection()
    assert description["style"] == "host"
    assert description["address"] == f"{parts.hostname}:{parts.port or 27017}"


def test_client_options_apply_over_the_defaults(settings: Any) -> None:
    settings.MONGO_SESSIONS_CLIENT_OPTIONS = {"maxPoolSize": 7, "appname": "shop"}
    round_trip()
    options = connection.get_target().client.options
    assert options.pool_options.max_pool_size == 7
    assert options.pool_options.metadata["application"] == {"name": "shop"}
    # The package's short server-selection default is kept.
    assert options.server_selection_timeout == 5


def test_settings_are_read_lazily(settings: Any, mongo_client: Any) -> None:
    first = round_trip()
    settings.MONGO_SESSIONS_COLLECTION = settings.MONGO_SESSIONS_COLLECTION + "_moved"
    second = round_trip()
    moved = mongo_client[TEST_DB][settings.MONGO_SESSIONS_COLLECTION]
    try:
        assert moved.find_one({"_id": second}) is not None
        assert moved.find_one({"_id": first}) is None
    finally:
        moved.drop()


def test_a_client_given_by_the_user_is_never_closed(
    settings: Any, user_client: Any, no_url: None
) -> None:
    settings.MONGO_CLIENT = user_client
    settings.MONGO_DB_NAME = OTHER_DB
    round_trip()
    connection.reset()
    settings.MONGO_CLIENT = None  # a settings change resets the package's state too
    user_client.admin.command("ping")  # would raise InvalidOperation after close()


def test_one_client_per_process(sessions_collection: Any) -> None:
    round_trip()
    client = connection.get_target().client
    round_trip()
    assert connection.get_target().client is client


def _child_round_trip(queue: Any) -> None:
    try:
        key = round_trip()
        # The parent marked its client: a client made after the fork has no mark.
        # (vars(), not getattr(): a MongoClient answers any attribute with a Database.)
        inherited = "made_in_parent" in vars(connection.get_target().client)
        queue.put(("ok", inherited, key))
    except Exception as e:  # reported to the parent, which fails the test
        queue.put(("error", repr(e), None))


def test_a_new_client_after_fork(sessions_collection: Any) -> None:
    round_trip()
    connection.get_target().client.made_in_parent = True  # type: ignore[attr-defined]
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_round_trip, args=(queue,))
    child.start()
    status, inherited, key = queue.get(timeout=60)
    child.join(timeout=30)
    assert status == "ok", inherited
    assert inherited is False
    assert sessions_collection.find_one({"_id": key}) is not None
    # The parent's client goes on working after the fork.
    round_trip()


def test_unreachable_server_fails_within_the_default_timeout(settings: Any) -> None:
    settings.MONGO_SESSIONS_URL = f"mongodb://127.0.0.1:{free_port()}/nowhere"
    started = time.monotonic()
    with pytest.raises(SessionStoreUnavailable, match="session load failed"):
        SessionStore("f" * 32).load()
    # pymongo alone would wait 30 s; the package's default bound is 5 s.
    assert time.monotonic() - started < 10


@pytest.mark.no_mongo
def test_no_network_io_at_import_setup_or_checks() -> None:
    script = textwrap.dedent(
        """
        import socket
        attempts = []
        real_connect = socket.socket.connect
        def recording_connect(self, address):
            attempts.append(address)
            return real_connect(self, address)
        socket.socket.connect = recording_connect

        import django
        from django.conf import settings
        settings.configure(
            INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes",
                            "django.contrib.sessions", "mongo_sessions"],
            SESSION_ENGINE="mongo_sessions.session",
            MONGO_SESSIONS_URL="mongodb://127.0.0.1:9/never",
            DATABASES={},
        )
        django.setup()
        from django.core.management import call_command
        import mongo_sessions.session
        from mongo_sessions import connection
        mongo_sessions.session.SessionStore()
        call_command("check")
        assert connection._state._target is None, "a client was created"
        assert attempts == [], attempts
        print("no network I/O")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "no network I/O" in result.stdout


@requires_async_api
async def test_async_client_is_kept_when_first_use_fails(settings: Any) -> None:
    settings.MONGO_SESSIONS_URL = f"mongodb://127.0.0.1:{free_port()}/nowhere"
    settings.MONGO_SESSIONS_TIMEOUT = 0.3
    for _ in range(2):
        with pytest.raises(SessionStoreUnavailable, match="session load failed"):
            await SessionStore("f" * 32).aload()
    # One AsyncMongoClient for this event loop, reused by the second attempt.
    assert len(connection._state.loop_clients()) == 1


def test_ping_and_describe_connection(settings: Any, mongo_url: str) -> None:
    connection.ping()
    description = connection.describe_connection()
    assert set(description) == {"style", "address", "database", "collection"}
    assert "@" not in description["address"]
    settings.MONGO_SESSIONS_URL = f"mongodb://127.0.0.1:{free_port()}/nowhere"
    settings.MONGO_SESSIONS_TIMEOUT = 0.3
    with pytest.raises(SessionStoreUnavailable, match="session ping failed"):
        connection.ping()


@requires_async_api
async def test_aping(settings: Any) -> None:
    await connection.aping()
    settings.MONGO_SESSIONS_URL = f"mongodb://127.0.0.1:{free_port()}/nowhere"
    settings.MONGO_SESSIONS_TIMEOUT = 0.3
    with pytest.raises(SessionStoreUnavailable, match="session ping failed"):
        await connection.aping()
