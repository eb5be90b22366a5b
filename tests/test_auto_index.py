"""Automatic index creation is housekeeping: sessions go on when it fails or is slow.

It runs in a background thread, never inside a session operation; a failure is
logged once with what to do, retried after a backoff (not on every request),
and ``check --deploy`` reports the missing index (mongo_sessions.E102). The
faults come from the server's ``failCommand`` failpoint on ``createIndexes``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest

from mongo_sessions import connection, indexes
from mongo_sessions.checks import check_server
from mongo_sessions.session import SessionStore
from tests.faults import FailCommand, failpoint_for
from tests.support import AllCommands, requires_async_api

UNKNOWN_ERROR = 8  # not a conflict, not an authorization failure: any other refusal


@pytest.fixture
def all_commands(settings: Any) -> AllCommands:
    listener = AllCommands()
    settings.MONGO_SESSIONS_CLIENT_OPTIONS = {
        "appname": f"auto-index-{uuid.uuid4().hex[:10]}",
        "event_listeners": [listener],
    }
    return listener


@pytest.fixture
def fail_command(
    mongo_client: pymongo.MongoClient[dict[str, Any]], settings: Any, all_commands: AllCommands
) -> Iterator[FailCommand]:
    """The failCommand failpoint for the package's clients; always off after the test."""
    yield from failpoint_for(mongo_client, settings.MONGO_SESSIONS_CLIENT_OPTIONS["appname"])


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The clock of the index creation's backoff, moved by the test instead of waited for."""
    now = [time.monotonic()]
    monkeypatch.setattr(indexes, "monotonic", lambda: now[0])
    return now


@pytest.fixture
def index_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="mongo_sessions")
    return caplog


def messages(logs: pytest.LogCaptureFixture, level: int = logging.DEBUG) -> list[str]:
    """The package's log messages at ``level`` or above."""
    own = [r for r in logs.records if r.name == "mongo_sessions" and r.levelno >= level]
    return [r.getMessage() for r in own]


def warnings_of(logs: pytest.LogCaptureFixture) -> list[str]:
    return messages(logs, logging.WARNING)


def index_names(collection: Any) -> set[str]:
    return {spec["name"] for spec in collection.list_indexes()}


def sessions_round_trip(count: int) -> None:
    """Create, load and save sessions: each must work whatever the index creation does."""
    for i in range(count):
        session = SessionStore()
        session["i"] = i
        session.create()
        again = SessionStore(session.session_key)
        assert again["i"] == i
        again["i"] = i + 1
        again.save()


def test_failing_index_creation_leaves_sessions_working_and_is_retried_with_a_backoff(
    fail_command: FailCommand,
    all_commands: AllCommands,
    clock: list[float],
    index_logs: pytest.LogCaptureFixture,
    sessions_collection: Any,
) -> None:
    sessions_collection.insert_one({"_id": "placeholder"})  # the collection exists
    fail_command.arm(["createIndexes"], errorCode=UNKNOWN_ERROR)
    sessions_round_trip(1)
    assert not connection.wait_for_auto_index(30)  # the attempt ran, and failed
    sessions_round_trip(10)  # every request works, and none tries again
    assert all_commands.commands.count("createIndexes") == 1
    [warning] = warnings_of(index_logs)  # logged once, with what to do
    assert "code 8" in warning
    assert "mongo_sessions_setup" in warning
    assert "next attempt is in 10 s" in warning
    # check --deploy reports what is missing meanwhile.
    assert [m.id for m in check_server()] == ["mongo_sessions.E102"]

    clock[0] += indexes.AUTO_INDEX_FIRST_RETRY  # the backoff has passed
    sessions_round_trip(1)
    assert not connection.wait_for_auto_index(30)
    assert all_commands.commands.count("createIndexes") == 2
    assert len(warnings_of(index_logs)) == 1  # the second failure at DEBUG only
    assert "next attempt is in 20 s" in messages(index_logs)[-1]  # doubled

    fail_command.off()
    clock[0] += 2 * indexes.AUTO_INDEX_FIRST_RETRY
    sessions_round_trip(1)
    assert connection.wait_for_auto_index(30)
    assert {"expire_date_1", "user_id_1"} <= index_names(sessions_collection)
    assert "at attempt 3" in messages(index_logs)[-1]
    assert check_server() == []
    sessions_round_trip(3)
    assert all_commands.commands.count("createIndexes") == 3  # done: never again


@requires_async_api
async def test_async_failing_index_creation_leaves_sessions_working(
    fail_command: FailCommand,
    all_commands: AllCommands,
    clock: list[float],
    index_logs: pytest.LogCaptureFixture,
    sessions_collection: Any,
) -> None:
    sessions_collection.insert_one({"_id": "placeholder"})  # the collection exists
    fail_command.arm(["createIndexes"], errorCode=UNKNOWN_ERROR)
    for i in range(5):
        session = SessionStore()
        await session.aset("i", i)
        await session.acreate()
        assert await SessionStore(session.session_key).aget("i") == i
        if i == 0:
            assert not connection.wait_for_auto_index(30)
    assert all_commands.commands.count("createIndexes") == 1
    assert len(warnings_of(index_logs)) == 1
    fail_command.off()
    clock[0] += indexes.AUTO_INDEX_FIRST_RETRY
    assert await SessionStore("u" * 32).aload() == {}
    assert connection.wait_for_auto_index(30)
    assert {"expire_date_1", "user_id_1"} <= index_names(sessions_collection)


def test_slow_index_creation_does_not_hold_up_session_operations(
    fail_command: FailCommand, settings: Any, sessions_collection: Any
) -> None:
    settings.MONGO_SESSIONS_TIMEOUT = 1
    # The collection exists, so that the first use goes straight to createIndexes.
    sessions_collection.insert_one({"_id": "placeholder"})
    fail_command.arm(["createIndexes"], blockConnection=True, blockTimeMS=3000)
    started = time.monotonic()
    session = SessionStore()
    session["cart"] = ["apple"]
    session.create()  # starts the index creation, which the server holds 3 s
    elapsed = time.monotonic() - started
    # Bounded by its own 1 s timeout, the create ended while createIndexes,
    # held 3 s, was still running: the request did not wait for it.
    assert not connection._state.auto_index.done
    assert SessionStore(session.session_key)["cart"] == ["apple"]
    print(f"\ncreate with createIndexes held 3 s: {elapsed:.3f} s")
    assert connection.wait_for_auto_index(30)  # slow, not failed: it completes
    assert {"expire_date_1", "user_id_1"} <= index_names(sessions_collection)


def test_no_index_creation_before_the_collection_exists(
    all_commands: AllCommands, settings: Any, sessions_collection: Any
) -> None:
    # A process that only reads creates nothing: createIndexes would create
    # the collection.
    for _ in range(3):
        assert SessionStore("u" * 32).load() == {}
    assert not connection.wait_for_auto_index(1)
    assert "createIndexes" not in all_commands.commands
    assert sessions_collection.name not in sessions_collection.database.list_collection_names()
    SessionStore().create()
    assert connection.wait_for_auto_index(30)
    assert all_commands.commands.count("createIndexes") == 1
