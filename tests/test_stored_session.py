"""stored_session() / astored_session(): one session as stored, time-bounded, keyless."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import bson
import pymongo
import pytest
from django.contrib.auth import SESSION_KEY

import mongo_sessions
from mongo_sessions.clock import utc_now
from mongo_sessions.exceptions import SessionStoreUnavailable
from mongo_sessions.session import SessionStore
from mongo_sessions.testing import CommandCounter
from tests.faults import FailCommand, own_app_name
from tests.logins import saved_session
from tests.support import requires_async_api

TIMEOUT = 0.5  # MONGO_SESSIONS_TIMEOUT of the blocked-server test, seconds
MARGIN = 1.5  # how much later than the timeout the failure may come (see test_faults.py)


@pytest.fixture
def app_name(settings: Any) -> str:
    """Give the package's client an application name of this test's own."""
    return own_app_name(settings, "stored")


def test_returns_the_stored_document_of_a_live_session(
    sessions_collection: Any,
) -> None:
    store = saved_session(cart={"apple": 2}, **{SESSION_KEY: "42"})
    key = store.session_key or ""
    document = sessions_collection.find_one({"_id": key})

    stored = mongo_sessions.stored_session(key)

    assert stored is not None
    assert stored.key_hash == mongo_sessions.hash_session_key(key)
    assert key not in repr(stored)
    assert stored.size == len(bson.encode(document)) > 0
    assert stored.expire_date == document["expire_date"]
    assert stored.expire_date.utcoffset() == timedelta(0)
    assert stored.created_at == document["created_at"]
    assert stored.user_id == "42"
    assert stored.data == document["data"]
    assert SessionStore().decode(stored.data) == {"cart": {"apple": 2}, SESSION_KEY: "42"}
    # A session object is looked up by its key.
    assert mongo_sessions.stored_session(SessionStore(key)) == stored


def test_unknown_expired_and_malformed_keys_give_none(
    sessions_collection: Any, command_counter: CommandCounter, settings: Any
) -> None:
    # No TTL index, so that the expired document is still there to be left out.
    settings.MONGO_SESSIONS_AUTO_INDEX = False
    expired = saved_session(visits=1)
    sessions_collection.update_one(
        {"_id": expired.session_key}, {"$set": {"expire_date": utc_now() - timedelta(seconds=1)}}
    )
    command_counter.reset()

    assert mongo_sessions.stored_session(expired.session_key) is None
    assert mongo_sessions.stored_session("a" * 32) is None
    assert command_counter.commands == ["find", "find"]

    command_counter.reset()
    for malformed in [None, "", "short", "A" * 32, '{"$gt": ""}', "a" * 65, SessionStore()]:
        assert mongo_sessions.stored_session(malformed) is None
    assert command_counter.commands == [], "a malformed key reached MongoDB"


def test_blocked_server_fails_within_the_timeout_without_the_key(
    settings: Any,
    app_name: str,
    mongo_client: pymongo.MongoClient[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.MONGO_SESSIONS_TIMEOUT = TIMEOUT
    key = saved_session(visits=1).session_key or ""
    failpoint = FailCommand(mongo_client, app_name)
    reason = failpoint.refusal()
    if reason is not None:
        pytest.skip(reason)
    failpoint.arm(["find"], blockConnection=True, blockTimeMS=4000)
    try:
        started = time.monotonic()
        with pytest.raises(SessionStoreUnavailable) as raised:
            mongo_sessions.stored_session(key)
        elapsed = time.monotonic() - started
    finally:
        failpoint.off()

    assert elapsed < TIMEOUT + MARGIN, f"stored_session took {elapsed:.2f} s"
    assert raised.value.operation == "stored_session"
    assert key not in str(raised.value)
    assert raised.value.__cause__ is None or key not in str(raised.value.__cause__)
    assert key not in caplog.text
    # The fault clears: the next call works.
    assert mongo_sessions.stored_session(key) is not None


@requires_async_api
async def test_async_twin_gives_the_same_answers(sessions_collection: Any) -> None:
    store = SessionStore()
    await store.aset("visits", 3)
    await store.asave()
    key = store.session_key or ""

    stored = await mongo_sessions.astored_session(store)

    assert stored is not None
    assert stored == await mongo_sessions.astored_session(key)
    assert stored.size == len(bson.encode(sessions_collection.find_one({"_id": key})))
    assert stored.user_id is None
    assert await mongo_sessions.astored_session("b" * 32) is None
    assert await mongo_sessions.astored_session("not a key") is None


def test_async_twin_on_django_without_the_async_session_api(
    sessions_collection: Any,
) -> None:
    """astored_session needs only an event loop, whatever Django's version."""
    key = saved_session(visits=1).session_key or ""
    stored = asyncio.run(mongo_sessions.astored_session(key))
    assert stored == mongo_sessions.stored_session(key)
