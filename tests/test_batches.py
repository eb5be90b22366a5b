"""clear_expired (``manage.py clearsessions``) works in batches, each under its own bound.

A backlog of expired sessions (a collection without its TTL index) is removed
in batches of MONGO_SESSIONS_BATCH_SIZE documents: each batch finds that many
expired ``_id`` values and deletes them, under MONGO_SESSIONS_BATCH_TIMEOUT
seconds rather than a request's MONGO_SESSIONS_TIMEOUT. So the command always
progresses, never waits on one call for long, and finishes however big the
backlog (``-m slow``: 120,000 expired sessions on a server of their own).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pymongo
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from pymongo import monitoring

from mongo_sessions.clock import utc_now
from mongo_sessions.exceptions import SessionStoreError, SessionStoreUnavailable
from mongo_sessions.session import SessionStore
from tests.faults import FailCommand, failpoint_for
from tests.servers import ChildProcess, free_port
from tests.support import TEST_DB, StartedCommands, requires_async_api

BATCH_SIZE = 100
EXPIRED = 250  # two full batches and a partial one
LIVE = 5


class CommandRecorder(StartedCommands):
    """Keep the find and delete commands the package's client sends."""

    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("find", "delete"):
            self.commands.append({"name": event.command_name, **event.command})


@pytest.fixture
def recorder(settings: Any) -> CommandRecorder:
    recording = CommandRecorder()
    app_name = f"batches-{uuid.uuid4().hex[:10]}"
    settings.MONGO_SESSIONS_CLIENT_OPTIONS = {"appname": app_name, "event_listeners": [recording]}
    return recording


@pytest.fixture
def backlog(sessions_collection: Any, settings: Any) -> Any:
    """EXPIRED expired and LIVE live sessions, and no TTL index to remove them."""
    settings.MONGO_SESSIONS_AUTO_INDEX = False
    settings.MONGO_SESSIONS_BATCH_SIZE = BATCH_SIZE
    now = utc_now()
    sessions_collection.insert_many(
        [fake_session(now - timedelta(minutes=1 + i)) for i in range(EXPIRED)]
        + [fake_session(now + timedelta(days=1)) for _ in range(LIVE)]
    )
    return sessions_collection


def fake_session(expire_date: Any) -> dict[str, Any]:
    return {"_id": uuid.uuid4().hex, "data": "x", "expire_date": expire_date}


def batches(recorder: CommandRecorder) -> list[tuple[str, int]]:
    """The commands as (name, documents asked for or deleted by _id)."""
    shape = []
    for command in recorder.commands:
        if command["name"] == "find":
            shape.append(("find", command["limit"]))
        else:
            statements = command["deletes"]
            assert all(s["limit"] == 1 and "expire_date" in s["q"] for s in statements)
            shape.append(("delete", len({s["q"]["_id"] for s in statements})))
    return shape


EXPECTED_BATCHES = [
    ("find", BATCH_SIZE),
    ("delete", BATCH_SIZE),
    ("find", BATCH_SIZE),
    ("delete", BATCH_SIZE),
    ("find", BATCH_SIZE),
    ("delete", EXPIRED - 2 * BATCH_SIZE),
]


def test_clear_expired_deletes_in_batches(backlog: Any, recorder: CommandRecorder) -> None:
    SessionStore.clear_expired()

    assert batches(recorder) == EXPECTED_BATCHES
    assert backlog.count_documents({}) == LIVE
    assert backlog.count_documents({"expire_date": {"$lte": utc_now()}}) == 0


def test_clearsessions_deletes_in_batches(backlog: Any, recorder: CommandRecorder) -> None:
    call_command("clearsessions")  # Django's command: no options of its own

    assert batches(recorder) == EXPECTED_BATCHES
    assert backlog.count_documents({}) == LIVE


@requires_async_api
async def test_async_clear_expired_deletes_in_batches(
    backlog: Any, recorder: CommandRecorder
) -> None:
    await SessionStore.aclear_expired()

    assert batches(recorder) == EXPECTED_BATCHES
    assert backlog.count_documents({}) == LIVE


@pytest.fixture
def fail_command(
    mongo_client: pymongo.MongoClient[dict[str, Any]], settings: Any, recorder: CommandRecorder
) -> Iterator[FailCommand]:
    yield from failpoint_for(mongo_client, settings.MONGO_SESSIONS_CLIENT_OPTIONS["appname"])


def test_each_batch_runs_under_the_batch_timeout_not_the_request_timeout(
    backlog: Any, fail_command: FailCommand, settings: Any
) -> None:
    settings.MONGO_SESSIONS_TIMEOUT = 0.5
    settings.MONGO_SESSIONS_BATCH_TIMEOUT = 10
    # One batch's delete takes 1.5 s: longer than a request may wait, well
    # within the batch's bound.
    fail_command.arm(["delete"], mode={"times": 1}, blockConnection=True, blockTimeMS=1500)

    SessionStore.clear_expired()

    assert backlog.count_documents({}) == LIVE


def test_a_batch_over_its_timeout_fails_within_it_and_keeps_the_batches_before(
    backlog: Any, fail_command: FailCommand, settings: Any
) -> None:
    settings.MONGO_SESSIONS_BATCH_TIMEOUT = 0.5
    fail_command.arm(
        ["delete"], mode={"skip": 1, "times": 1}, blockConnection=True, blockTimeMS=4000
    )

    started = time.monotonic()
    with pytest.raises(SessionStoreError) as raised:
        SessionStore.clear_expired()
    elapsed = time.monotonic() - started

    assert elapsed < 0.5 + 1.5 + 0.5, f"took {elapsed:.2f} s"  # the first batch, then 0.5 s
    assert raised.value.operation == "clear_expired"
    assert "timeout 0.5 s" in str(raised.value)
    # The first batch is done; the blocked one may be applied when the server resumes.
    assert backlog.count_documents({}) <= LIVE + EXPIRED - BATCH_SIZE


PASSWORD = "unreachable-pw-7f3a"


@pytest.fixture
def unreachable(settings: Any) -> str:
    """A URL (with a password) to a port nothing listens on; MONGO_SESSIONS_TIMEOUT 1 s."""
    port = free_port()
    settings.MONGO_SESSIONS_URL = f"mongodb://admin:{PASSWORD}@127.0.0.1:{port}/myproject"
    settings.MONGO_SESSIONS_TIMEOUT = 1
    settings.MONGO_SESSIONS_BATCH_TIMEOUT = 60  # the default, for slow batches
    return f"127.0.0.1:{port}"


def assert_unreachable_reported(error: SessionStoreError, address: str, elapsed: float) -> None:
    # A bound, not a speed target: the old code waited for the batch's 60 s.
    assert elapsed < 1 + 10, f"took {elapsed:.1f} s"
    assert isinstance(error, SessionStoreUnavailable)
    assert error.operation == "clear_expired"
    message = str(error)
    assert "could not be reached (timeout 1.0 s)" in message and address in message
    assert PASSWORD not in message


def test_clearsessions_fails_within_the_timeout_when_the_server_is_unreachable(
    unreachable: str,
) -> None:
    started = time.monotonic()
    with pytest.raises(SessionStoreError) as raised:
        call_command("clearsessions")
    assert_unreachable_reported(raised.value, unreachable, time.monotonic() - started)


@requires_async_api
async def test_async_clear_expired_fails_within_the_timeout_when_the_server_is_unreachable(
    unreachable: str,
) -> None:
    started = time.monotonic()
    with pytest.raises(SessionStoreError) as raised:
        await SessionStore.aclear_expired()
    assert_unreachable_reported(raised.value, unreachable, time.monotonic() - started)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MONGO_SESSIONS_BATCH_SIZE", 0),
        ("MONGO_SESSIONS_BATCH_SIZE", "1000"),
        ("MONGO_SESSIONS_BATCH_SIZE", True),
        ("MONGO_SESSIONS_BATCH_TIMEOUT", 0),
        ("MONGO_SESSIONS_BATCH_TIMEOUT", "60"),
    ],
)
def test_invalid_batch_setting_is_named(settings: Any, name: str, value: Any) -> None:
    setattr(settings, name, value)
    with pytest.raises(ImproperlyConfigured, match=name):
        SessionStore.clear_expired()


# --- the big backlog -----------------------------------------------------------------

BIG_BACKLOG = 120_000
INSERT_BATCH = 10_000


@pytest.mark.slow
def test_clearsessions_removes_120000_expired_sessions(
    own_server: ChildProcess, settings: Any
) -> None:
    """Run with ``-rP`` to see the times it prints."""
    settings.MONGO_SESSIONS_AUTO_INDEX = False  # no TTL index: nothing else removes them
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(own_server.url)
    collection = client[TEST_DB]["sessions"]
    past = utc_now() - timedelta(hours=1)
    started = time.monotonic()
    for first in range(0, BIG_BACKLOG, INSERT_BATCH):
        collection.insert_many(
            [fake_session(past) for _ in range(first, first + INSERT_BATCH)], ordered=False
        )
    print(f"inserted {BIG_BACKLOG:,} expired sessions in {time.monotonic() - started:.1f} s")
    assert collection.count_documents({}) == BIG_BACKLOG

    started = time.monotonic()
    call_command("clearsessions")
    elapsed = time.monotonic() - started
    print(f"clearsessions removed them in {elapsed:.1f} s")

    assert collection.count_documents({}) == 0
    client.close()
