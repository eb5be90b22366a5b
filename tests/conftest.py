"""Fixtures: a live MongoDB-wire server over TCP, and a fresh collection per test.

By default a SecantusDB server (tests/servers.py) is started on 127.0.0.1 for
the session, with its data in pytest's temporary folder. Set
MONGO_SESSIONS_TEST_URL to run the suite against a real mongod instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest

from mongo_sessions import connection
from mongo_sessions.key_change import abandoned_documents
from mongo_sessions.testing import CommandCounter
from tests.servers import ChildProcess, test_mongo_server, wait_for_ping
from tests.support import OTHER_DB, TEST_DB, TEST_URL


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL (without database) of the live server the tests use."""
    if TEST_URL:
        wait_for_ping(TEST_URL)
        yield TEST_URL
        return
    with test_mongo_server(tmp_path_factory.mktemp("mongo") / "data") as server:
        yield server.url


@pytest.fixture(scope="session")
def mongo_client(mongo_url: str) -> Iterator[pymongo.MongoClient[dict[str, Any]]]:
    """A client of the tests' own, to look at the server behind the package's back."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        mongo_url, serverSelectionTimeoutMS=5000, tz_aware=True
    )
    yield client
    client.close()


@pytest.fixture
def user_client(mongo_url: str) -> Iterator[pymongo.MongoClient[dict[str, Any]]]:
    """A site's own MongoClient (appname "shop"), as given in MONGO_CLIENT; closed after."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        mongo_url, serverSelectionTimeoutMS=5000, appname="shop"
    )
    yield client
    client.close()


@pytest.fixture
def no_url(settings: Any, mongo_client: Any) -> Iterator[None]:
    """No MONGO_SESSIONS_URL; the test's collection in OTHER_DB is dropped after."""
    settings.MONGO_SESSIONS_URL = None
    yield
    mongo_client[OTHER_DB][settings.MONGO_SESSIONS_COLLECTION].drop()


@pytest.fixture(autouse=True)
def sessions_collection(
    request: pytest.FixtureRequest, settings: Any
) -> Iterator[pymongo.collection.Collection[dict[str, Any]] | None]:
    """Point the package at a collection of its own for each test, and drop it after."""
    if "no_mongo" in request.keywords:
        yield None
        return
    mongo_url = request.getfixturevalue("mongo_url")
    client = request.getfixturevalue("mongo_client")
    name = f"sessions_{uuid.uuid4().hex[:12]}"
    settings.MONGO_SESSIONS_URL = mongo_url.rstrip("/") + f"/{TEST_DB}"
    settings.MONGO_SESSIONS_COLLECTION = name
    collection = client[TEST_DB][name]
    yield collection
    connection.reset()
    # Documents a failed login left for the next load: of this test's collection.
    abandoned_documents.clear()
    collection.drop()


@pytest.fixture
def command_counter(settings: Any) -> CommandCounter:
    """Make the package's clients report their commands to a counter."""
    counter = CommandCounter()
    settings.MONGO_SESSIONS_CLIENT_OPTIONS = {"event_listeners": [counter]}
    return counter


@pytest.fixture
def alice() -> Any:
    """A saved user, alice (password "pw")."""
    from django.contrib.auth.models import User

    return User.objects.create_user("alice", password="pw")


@pytest.fixture
def bob() -> Any:
    """A saved user, bob (password "pw")."""
    from django.contrib.auth.models import User

    return User.objects.create_user("bob", password="pw")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "no_mongo: the test needs no MongoDB server")


@pytest.fixture
def own_server(settings: Any, tmp_path: Path) -> Iterator[ChildProcess]:
    """A server of this test's own, on disk, that the test may stop and restart.

    The package's settings point at it (database TEST_DB, collection "sessions").
    """
    server = test_mongo_server(tmp_path / "data").start()
    try:
        settings.MONGO_SESSIONS_URL = server.url + TEST_DB
        settings.MONGO_SESSIONS_COLLECTION = "sessions"
        yield server
    finally:
        connection.reset()
        server.stop()
