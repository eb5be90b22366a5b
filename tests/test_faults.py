"""Injected faults against a live server: dropped connections, errors, a blocked or dead server.

The faults come from the server's ``failCommand`` failpoint (SecantusDB started
with ``--enable-test-commands``, or a mongod with ``enableTestCommands=1`` given
in MONGO_SESSIONS_TEST_URL). Each failpoint names the package client's
``appName``, so only the package's commands fail, and a finalizer always turns
it off. When the server refuses ``configureFailPoint`` the tests are skipped.

What they prove: a retryable write is retried and lands exactly once (a
create whose reply was lost included, whether or not the server recognises the
retry); any other failure surfaces as an exception naming the operation (never
an empty session, never a reported success) that says what changed:
``SessionStoreError`` when MongoDB refused it (nothing), ``SessionStoreUnavailable``
when it could not be reached (nothing), ``SessionStoreOutcomeUnknown`` when a
write was sent but not confirmed (a write-concern error, a reply that did not
come: it may have been applied); a blocked or stopped server fails the
operation within ``MONGO_SESSIONS_TIMEOUT``; the same code works again once the
fault clears, with no restart; and the session key is never written in clear
in a log record or an exception (including the chained driver error).
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest
from django.contrib.auth.models import User
from django.http import HttpRequest, JsonResponse
from django.test import Client
from django.urls import path

from mongo_sessions import connection
from mongo_sessions.exceptions import (
    SessionStoreError,
    SessionStoreOutcomeUnknown,
    SessionStoreUnavailable,
)
from mongo_sessions.session import SessionStore
from mongo_sessions.testing import CommandCounter
from tests.faults import FailCommand, failpoint_for, is_replica_set, own_app_name
from tests.logins import saved_session
from tests.servers import ChildProcess
from tests.support import TEST_DB, requires_async_api

TIMEOUT = 0.5  # MONGO_SESSIONS_TIMEOUT of the timing tests, seconds
# How much later than the timeout a failure may be reported: the driver closes
# the socket, the exception is built and translated (generous for a loaded CI).
MARGIN = 1.5
BLOCK_MS = 4000  # far longer than TIMEOUT: only the timeout can end the wait
NON_RETRYABLE_CODE = 8  # UnknownError: neither reads nor writes retry it

FAULT_LOGGERS = ("mongo_sessions", "django")

# --- fixtures ----------------------------------------------------------------


@pytest.fixture
def app_name(settings: Any) -> str:
    """Give the package's client an application name of this test's own."""
    return own_app_name(settings, "faults")


@pytest.fixture
def counter(settings: Any, app_name: str) -> CommandCounter:
    """Count the commands the package's client sends (with the test's appname)."""
    counting = CommandCounter()
    settings.MONGO_SESSIONS_CLIENT_OPTIONS = {"appname": app_name, "event_listeners": [counting]}
    return counting


@pytest.fixture
def fail_command(
    mongo_client: pymongo.MongoClient[dict[str, Any]], app_name: str
) -> Iterator[FailCommand]:
    """The failCommand failpoint for the package's client; always off after the test."""
    yield from failpoint_for(mongo_client, app_name)


@pytest.fixture
def retryable_writes(mongo_client: pymongo.MongoClient[dict[str, Any]]) -> None:
    if not is_replica_set(mongo_client):
        pytest.skip("retryable writes need a replica set; the server is a standalone")


@pytest.fixture
def fault_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture the package's and Django's log records at DEBUG."""
    for name in FAULT_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def stored_data(session_key: str) -> dict[str, Any]:
    """The session's data as a fresh store loads it (no fault armed)."""
    return SessionStore(session_key).load()


def full_text(error: BaseException) -> str:
    """The exception as a log handler prints it: message, traceback and chained causes."""
    return "".join(traceback.format_exception(error))


def assert_key_not_disclosed(
    key: str, error: BaseException, logs: pytest.LogCaptureFixture
) -> None:
    assert key not in full_text(error), "the session key is in the exception or its causes"
    assert key not in logs.text, "the session key is in a log record"


# --- retryable writes ----------------------------------------------------------


@pytest.mark.usefixtures("retryable_writes")
def test_dropped_connection_during_save_is_retried_and_lands_once(
    fail_command: FailCommand, counter: CommandCounter, sessions_collection: Any
) -> None:
    store = saved_session(cart={"apple": 1})
    fail_command.arm(["update"], mode={"times": 1}, closeConnection=True)
    counter.reset()

    store["cart"] = {"apple": 2}
    store.save()  # no exception: the driver retried on a new connection

    assert counter.writes == ["update", "update"], "the save was not retried"
    assert stored_data(store.session_key or "") == {"cart": {"apple": 2}}
    assert sessions_collection.count_documents({}) == 1


def lose_the_next_insert_reply(
    fail_command: FailCommand, counter: CommandCounter, sessions_collection: Any
) -> None:
    """Make the next insert apply but its reply fail with a retryable error; empty the
    collection (its indexes exist) and the counter."""
    saved_session()  # the collection and its indexes exist
    sessions_collection.delete_many({})
    fail_command.arm(
        ["insert"],
        mode={"times": 1},
        writeConcernError={
            "code": 64,
            "errmsg": "waiting for replication timed out",
            "errorLabels": ["RetryableWriteError"],
        },
    )
    counter.reset()


@pytest.mark.usefixtures("retryable_writes")
def test_create_whose_reply_is_lost_is_retried_without_a_second_document(
    fail_command: FailCommand,
    counter: CommandCounter,
    sessions_collection: Any,
) -> None:
    """The insert is applied, its reply fails with a retryable error, the driver
    retries. A server that recognises the retry replays the first result; one that
    does not (SecantusDB 0.7.0b3 when the retry's maxTimeMS changed, as it does
    under pymongo.timeout()) answers with a duplicate key, which create() reads as
    its own document (by the create id only that insert wrote), not as a collision
    that would move it to a new key and leave an orphan. Either way: one document."""
    lose_the_next_insert_reply(fail_command, counter, sessions_collection)

    store = saved_session(marker="only-once")

    assert counter.writes == ["insert", "insert"], "the insert was not retried"
    documents = list(sessions_collection.find({}, {"_id": True}))
    assert documents == [{"_id": store.session_key}]
    assert stored_data(store.session_key or "") == {"marker": "only-once"}


@requires_async_api
@pytest.mark.usefixtures("retryable_writes")
async def test_async_create_whose_reply_is_lost_is_retried_without_a_second_document(
    fail_command: FailCommand, counter: CommandCounter, sessions_collection: Any
) -> None:
    lose_the_next_insert_reply(fail_command, counter, sessions_collection)

    store = SessionStore()
    await store.aset("marker", "only-once")
    await store.asave()

    assert counter.writes == ["insert", "insert"], "the insert was not retried"
    assert list(sessions_collection.find({}, {"_id": True})) == [{"_id": store.session_key}]
    assert await SessionStore(store.session_key).aget("marker") == "only-once"


# --- server errors surface, never as an empty session or a false success ---------


@pytest.mark.parametrize(
    ("operation", "command"),
    [("load", "find"), ("exists", "find"), ("save", "update"), ("delete", "delete")],
)
def test_server_error_surfaces_as_session_store_error(
    fail_command: FailCommand,
    fault_logs: pytest.LogCaptureFixture,
    operation: str,
    command: str,
) -> None:
    store = saved_session(user_marker="alice", visits=3)
    key = store.session_key or ""
    fail_command.arm([command], errorCode=NON_RETRYABLE_CODE)

    fresh = SessionStore(key)
    with pytest.raises(SessionStoreError) as raised:
        if operation == "load":
            fresh["visits"]
        elif operation == "exists":
            fresh.exists(key)
        elif operation == "save":
            fresh["visits"] = 4  # loads (find is not failing here), then saves
            fresh.save()
        else:
            fresh.delete()

    error = raised.value
    assert not isinstance(error, SessionStoreUnavailable)
    assert error.operation == operation
    assert f"session {operation} failed" in str(error)
    assert f"code {NON_RETRYABLE_CODE}" in str(error)
    # The user is not logged out: the store keeps its key, nothing was dropped.
    assert fresh.session_key == key
    assert_key_not_disclosed(key, error, fault_logs)

    fail_command.off()
    assert stored_data(key) == {"user_marker": "alice", "visits": 3}


def test_server_error_on_create_leaves_no_document(
    fail_command: FailCommand, sessions_collection: Any
) -> None:
    saved_session()
    sessions_collection.delete_many({})
    fail_command.arm(["insert"], errorCode=NON_RETRYABLE_CODE)

    store = SessionStore()
    store["cart"] = {"bread": 1}
    with pytest.raises(SessionStoreError) as raised:
        store.save()

    assert raised.value.operation == "create"
    assert sessions_collection.count_documents({}) == 0


@requires_async_api
async def test_server_error_on_async_load_and_save(fail_command: FailCommand) -> None:
    store = SessionStore()
    store["visits"] = 1
    await store.asave()
    key = store.session_key or ""
    fail_command.arm(["find", "update"], errorCode=NON_RETRYABLE_CODE)

    with pytest.raises(SessionStoreError) as loading:
        await SessionStore(key).aget("visits")
    assert loading.value.operation == "load"

    store["visits"] = 2
    with pytest.raises(SessionStoreError) as saving:
        await store.asave()
    assert saving.value.operation == "save"

    fail_command.off()
    assert await SessionStore(key).aget("visits") == 1


# --- uncertain outcomes: applied, or maybe applied, but not confirmed ------------

# What mongod answers when w: "majority" is not reached within wtimeout: the
# primary applied the write; the replicas did not confirm it in time.
REPLICATION_TIMEOUT = {
    "code": 64,
    "codeName": "WriteConcernFailed",
    "errmsg": "waiting for replication timed out",
    "errInfo": {"wtimeout": True},
}


def assert_outcome_unknown(error: SessionStoreError, operation: str, key: str) -> None:
    assert isinstance(error, SessionStoreOutcomeUnknown)
    assert not isinstance(error, SessionStoreUnavailable)
    assert error.operation == operation
    assert str(error).startswith(f"mongo_sessions: session {operation} outcome unknown: ")
    assert "may" in error.detail and "applied" in error.detail
    assert "did not answer" not in str(error)
    assert not error.no_answer  # MongoDB answered: the store may go on calling it
    assert key not in full_text(error)


def test_write_concern_error_on_save_is_an_uncertain_outcome(
    fail_command: FailCommand, fault_logs: pytest.LogCaptureFixture
) -> None:
    store = saved_session(visits=1)
    key = store.session_key or ""
    fail_command.arm(["update"], mode={"times": 1}, writeConcernError=REPLICATION_TIMEOUT)

    store["visits"] = 2
    with pytest.raises(SessionStoreError) as raised:
        store.save()

    assert_outcome_unknown(raised.value, "save", key)
    assert "code 64" in str(raised.value)
    assert key not in fault_logs.text
    # As the message says: the primary applied it.
    assert stored_data(key) == {"visits": 2}
    # MongoDB answered, so the same store goes on working.
    store["visits"] = 3
    store.save()
    assert stored_data(key) == {"visits": 3}


def test_write_concern_error_on_create_is_an_uncertain_outcome(
    fail_command: FailCommand, sessions_collection: Any
) -> None:
    saved_session()
    sessions_collection.delete_many({})
    fail_command.arm(["insert"], mode={"times": 1}, writeConcernError=REPLICATION_TIMEOUT)

    store = SessionStore()
    store["cart"] = {"bread": 1}
    with pytest.raises(SessionStoreError) as raised:
        store.save()

    created = sessions_collection.find_one({})
    assert created is not None
    assert_outcome_unknown(raised.value, "create", created["_id"])
    # The document was written (its key never reached anyone), and nothing else.
    assert sessions_collection.count_documents({}) == 1
    assert store.session_key is None  # the store does not claim a key it was not given


def test_write_concern_error_on_delete_is_an_uncertain_outcome(
    fail_command: FailCommand, sessions_collection: Any
) -> None:
    store = saved_session(visits=1)
    key = store.session_key or ""
    fail_command.arm(["delete"], mode={"times": 1}, writeConcernError=REPLICATION_TIMEOUT)

    with pytest.raises(SessionStoreError) as raised:
        SessionStore(key).delete()

    assert_outcome_unknown(raised.value, "delete", key)
    assert sessions_collection.count_documents({}) == 0


@requires_async_api
async def test_write_concern_errors_on_async_writes_are_uncertain_outcomes(
    fail_command: FailCommand, sessions_collection: Any
) -> None:
    store = SessionStore()
    await store.aset("visits", 1)
    await store.asave()
    key = store.session_key or ""
    fail_command.arm(
        ["insert", "update", "delete"], mode={"times": 3}, writeConcernError=REPLICATION_TIMEOUT
    )

    await store.aset("visits", 2)
    with pytest.raises(SessionStoreError) as saving:
        await store.asave()
    assert_outcome_unknown(saving.value, "save", key)

    with pytest.raises(SessionStoreError) as creating:
        await SessionStore().acreate()
    created = sessions_collection.find_one({"_id": {"$ne": key}})
    assert created is not None  # written, and nothing else
    assert_outcome_unknown(creating.value, "create", created["_id"])

    with pytest.raises(SessionStoreError) as deleting:
        await SessionStore(key).adelete()
    assert_outcome_unknown(deleting.value, "delete", key)

    assert [d["_id"] for d in sessions_collection.find()] == [created["_id"]]


def test_refused_write_is_not_an_uncertain_outcome(fail_command: FailCommand) -> None:
    """A write MongoDB refused changed nothing: a plain SessionStoreError says so."""
    store = saved_session(visits=1)
    fail_command.arm(["update"], errorCode=NON_RETRYABLE_CODE)
    store["visits"] = 2
    with pytest.raises(SessionStoreError) as raised:
        store.save()
    assert type(raised.value) is SessionStoreError
    assert "MongoDB refused it" in str(raised.value)
    fail_command.off()
    assert stored_data(store.session_key or "") == {"visits": 1}


# --- a blocked server: the operation ends at the timeout ------------------------


@pytest.mark.parametrize(
    ("operation", "command", "expected"),
    [("load", "find", SessionStoreUnavailable), ("save", "update", SessionStoreOutcomeUnknown)],
)
def test_blocked_server_fails_within_the_timeout_then_recovers(
    fail_command: FailCommand,
    settings: Any,
    fault_logs: pytest.LogCaptureFixture,
    operation: str,
    command: str,
    expected: type[SessionStoreError],
) -> None:
    """A blocked read is unavailable; a blocked write was sent, and a blocked server
    runs it once it resumes (mongod and SecantusDB both do): its outcome is unknown."""
    settings.MONGO_SESSIONS_TIMEOUT = TIMEOUT
    store = saved_session(visits=1)
    key = store.session_key or ""
    target_before = connection.get_target()
    fail_command.arm([command], blockConnection=True, blockTimeMS=BLOCK_MS)

    fresh = SessionStore(key)
    started = time.monotonic()
    with pytest.raises(SessionStoreError) as raised:
        if operation == "load":
            fresh.load()
        else:
            fresh["visits"] = 2  # loads (find is not blocked here), then saves
            fresh.save()
    elapsed = time.monotonic() - started

    assert type(raised.value) is expected
    assert elapsed < TIMEOUT + MARGIN, f"{operation} took {elapsed:.2f} s"
    assert raised.value.operation == operation
    assert f"timeout {TIMEOUT} s" in str(raised.value)
    if expected is SessionStoreOutcomeUnknown:
        assert "session save outcome unknown: the write may have been applied" in str(raised.value)
    if expected is SessionStoreOutcomeUnknown:
        assert "did not answer" not in str(raised.value)
    assert_key_not_disclosed(key, raised.value, fault_logs)

    # The fault clears: the very next operation works, on the same client.
    fail_command.off()
    if expected is SessionStoreUnavailable:
        assert SessionStore(key).load() == {"visits": 1}
    else:
        assert SessionStore(key).load() in ({"visits": 1}, {"visits": 2})
    assert connection.get_target() is target_before


@requires_async_api
async def test_blocked_server_fails_async_save_within_the_timeout(
    fail_command: FailCommand, settings: Any
) -> None:
    settings.MONGO_SESSIONS_TIMEOUT = TIMEOUT
    store = SessionStore()
    store["visits"] = 1
    await store.asave()
    fail_command.arm(["update"], blockConnection=True, blockTimeMS=BLOCK_MS)

    store["visits"] = 2
    started = time.monotonic()
    with pytest.raises(SessionStoreOutcomeUnknown) as raised:
        await store.asave()
    assert time.monotonic() - started < TIMEOUT + MARGIN
    assert raised.value.no_answer
    assert "may have been applied" in str(raised.value)

    fail_command.off()
    assert await SessionStore(store.session_key).aget("visits") in (1, 2)


# --- a server that is down, then back on the same port and data -----------------


def test_server_down_fails_fast_and_same_code_works_after_restart(
    own_server: ChildProcess, settings: Any, fault_logs: pytest.LogCaptureFixture
) -> None:
    settings.MONGO_SESSIONS_TIMEOUT = TIMEOUT
    store = saved_session(cart={"coffee": 2})
    key = store.session_key or ""

    own_server.stop()
    for operation in ("load", "save", "create"):
        started = time.monotonic()
        with pytest.raises(SessionStoreUnavailable) as raised:
            if operation == "load":
                SessionStore(key).load()
            elif operation == "save":
                store["cart"] = {"coffee": 3}
                store.save()
            else:
                SessionStore().save()
        elapsed = time.monotonic() - started
        assert elapsed < TIMEOUT + MARGIN, f"{operation} took {elapsed:.2f} s with the server down"
        assert raised.value.operation == operation
        assert_key_not_disclosed(key, raised.value, fault_logs)

    # Back on the same port and data: the same code and client work again, for
    # the next request's store. (The store that saw the server down keeps failing
    # at once: one store serves one request, which waits at most one timeout.)
    own_server.start()
    settings.MONGO_SESSIONS_TIMEOUT = 5.0
    assert SessionStore(key).load() == {"cart": {"coffee": 2}}
    with pytest.raises(SessionStoreUnavailable, match="not sent"):
        store.save()
    later = SessionStore(key)
    later["cart"] = {"coffee": 4}
    later.save()
    assert SessionStore(key).load() == {"cart": {"coffee": 4}}


# --- through Django's SessionMiddleware -----------------------------------------


def whoami(request: HttpRequest) -> JsonResponse:
    username = request.user.get_username() if request.user.is_authenticated else None
    return JsonResponse({"user": username, "visits": request.session.get("visits", 0)})


def bump(request: HttpRequest) -> JsonResponse:
    request.session["visits"] = request.session.get("visits", 0) + 1
    return JsonResponse({"visits": request.session["visits"]})


urlpatterns = [path("whoami/", whoami), path("bump/", bump)]


def sessionid_cookie_cleared(response: Any) -> bool:
    cookie = response.cookies.get("sessionid")
    return cookie is not None and cookie.value == ""


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_middleware_load_failure_is_an_error_not_a_logout(
    fail_command: FailCommand, fault_logs: pytest.LogCaptureFixture
) -> None:
    user = User.objects.create_user("alice", password="not-used-here")
    browser = Client(raise_request_exception=False)
    browser.force_login(user)
    assert browser.get("/bump/").json() == {"visits": 1}
    key = browser.cookies["sessionid"].value

    fail_command.arm(["find"], errorCode=NON_RETRYABLE_CODE)
    response = browser.get("/whoami/")
    assert response.status_code == 500, "the request must fail, not answer as anonymous"
    assert not sessionid_cookie_cleared(response)

    strict = Client()  # re-raises the view's exception, as a test sees it
    strict.cookies["sessionid"] = key
    with pytest.raises(SessionStoreError) as raised:
        strict.get("/whoami/")
    assert raised.value.operation == "load"

    fail_command.off()
    assert browser.get("/whoami/").json() == {"user": "alice", "visits": 1}
    assert browser.cookies["sessionid"].value == key
    assert key not in fault_logs.text


@pytest.mark.urls(__name__)
def test_middleware_save_failure_is_an_error_and_keeps_the_stored_version(
    fail_command: FailCommand, fault_logs: pytest.LogCaptureFixture
) -> None:
    browser = Client(raise_request_exception=False)
    assert browser.get("/bump/").json() == {"visits": 1}
    key = browser.cookies["sessionid"].value

    fail_command.arm(["update"], errorCode=NON_RETRYABLE_CODE)
    response = browser.get("/bump/")
    assert response.status_code == 500, "a failed save must not be reported as a success"
    assert "sessionid" not in response.cookies

    fail_command.off()
    assert stored_data(key) == {"visits": 1}
    assert browser.get("/bump/").json() == {"visits": 2}
    assert key not in fault_logs.text


@pytest.mark.urls(__name__)
def test_key_not_in_logs_when_the_server_rejects_the_document(
    sessions_collection: Any, mongo_client: Any, fault_logs: pytest.LogCaptureFixture
) -> None:
    """A server-side validator rejects the save; MongoDB's error names the document's
    _id (errInfo.failingDocumentId), which is the session key: neither the package's
    exception, its chained driver error, nor Django's 500 log may show it."""
    browser = Client(raise_request_exception=False)
    assert browser.get("/bump/").json() == {"visits": 1}
    key = browser.cookies["sessionid"].value
    mongo_client[TEST_DB].command(
        "collMod", sessions_collection.name, validator={"never": {"$exists": True}}
    )

    response = browser.get("/bump/")
    assert response.status_code == 500
    assert "Internal Server Error: /bump/" in fault_logs.text
    assert key not in fault_logs.text

    store = SessionStore(key)
    store["visits"] = 5
    with pytest.raises(SessionStoreError) as raised:
        store.save()
    assert "code 121" in str(raised.value)
    assert key not in full_text(raised.value)
