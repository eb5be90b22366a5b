"""A failed login leaves the user as they were: every write of a key change, failing.

Logging in changes the session's key (``cycle_key()``: session fixation
protection) and then saves the authenticated session at the end of the request.
Three writes take part: the insert of the new document (provisional: it expires
within PROVISIONAL_LIFETIME unless the save completes), the save of the
authenticated data, and the deletion of the old document once that save
succeeded (then the new document gets its lasting expiry). Each is made to fail
with the server's ``failCommand`` failpoint, refused (error 8), applied but not
confirmed (a write-concern error) or unanswered (a blocked server), through the
API (sync and async) and through the demo's ``/login/`` form.

Whatever fails: the pre-login session is still stored and usable with the old
cookie, nothing authenticated is reachable through the old key, the
authenticated session never has the old key, and any other document is either
provisional (expires within PROVISIONAL_LIFETIME; its key never reached the
browser) or the authenticated session itself, whose next load deletes what is
left of the old one.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pymongo
import pytest
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.test import Client

from mongo_sessions import key_change
from mongo_sessions.clock import utc_now
from mongo_sessions.exceptions import (
    SessionStoreError,
    SessionStoreOutcomeUnknown,
    SessionStoreUnavailable,
)
from mongo_sessions.key_change import PROVISIONAL_LIFETIME
from mongo_sessions.session import SessionStore
from tests.faults import FailCommand, failpoint_for, own_app_name
from tests.servers import REPO_ROOT
from tests.support import requires_async_api

NON_RETRYABLE_CODE = 8  # UnknownError: neither reads nor writes retry it
TIMEOUT = 0.5  # MONGO_SESSIONS_TIMEOUT of the blocked-server case, seconds
REPLICATION_TIMEOUT = {
    "code": 64,
    "codeName": "WriteConcernFailed",
    "errmsg": "waiting for replication timed out",
    "errInfo": {"wtimeout": True},
}
CART = {"apple": 2}
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Fault:
    """One failure point of a login: which command fails, how, and what the caller sees."""

    name: str
    command: str
    mode: str | dict[str, int]
    data: dict[str, Any]
    # What the login raises (None: it succeeds, the key change completes later).
    raises: type[SessionStoreError] | None
    # Whether the failing write is the one that leaves the login in place.
    login_succeeds: bool = False
    settings: dict[str, Any] = field(default_factory=dict)


REFUSED = {"errorCode": NON_RETRYABLE_CODE}
UNCONFIRMED = {"writeConcernError": REPLICATION_TIMEOUT}
BLOCKED = {"blockConnection": True, "blockTimeMS": 2000}
FAULTS = [
    Fault("insert-refused", "insert", {"times": 1}, REFUSED, SessionStoreError),
    Fault("insert-unconfirmed", "insert", {"times": 1}, UNCONFIRMED, SessionStoreOutcomeUnknown),
    Fault("save-refused", "update", {"times": 1}, REFUSED, SessionStoreError),
    Fault("save-unconfirmed", "update", {"times": 1}, UNCONFIRMED, SessionStoreOutcomeUnknown),
    Fault(
        "save-unanswered",
        "update",
        {"times": 1},
        BLOCKED,
        SessionStoreOutcomeUnknown,
        settings={"MONGO_SESSIONS_TIMEOUT": TIMEOUT},
    ),
    Fault("delete-refused", "delete", "alwaysOn", REFUSED, None, login_succeeds=True),
    Fault("delete-unconfirmed", "delete", {"times": 1}, UNCONFIRMED, None, login_succeeds=True),
    Fault(
        "delete-unanswered",
        "delete",
        {"times": 1},
        BLOCKED,
        None,
        login_succeeds=True,
        settings={"MONGO_SESSIONS_TIMEOUT": TIMEOUT},
    ),
    # The update after the deletion, which gives the new document its lasting expiry.
    Fault(
        "completion-refused",
        "update",
        {"skip": 1, "times": 1},
        REFUSED,
        None,
        login_succeeds=True,
    ),
]


@pytest.fixture
def app_name(settings: Any) -> str:
    return own_app_name(settings, "key-change")


@pytest.fixture
def fail_command(
    mongo_client: pymongo.MongoClient[dict[str, Any]], app_name: str
) -> Iterator[FailCommand]:
    yield from failpoint_for(mongo_client, app_name)


# --- what a failed or a completed login leaves ------------------------------------


def pre_login_session() -> str:
    """An anonymous visitor's session with a cart; return its key."""
    store = SessionStore()
    store["cart"] = dict(CART)
    store.save()
    assert store.session_key is not None
    return store.session_key


def authenticate(store: SessionStore) -> None:
    """Write what django.contrib.auth.login() writes after cycle_key()."""
    store[SESSION_KEY] = "42"
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = "hash"


def documents(collection: Any) -> dict[str, dict[str, Any]]:
    return {document["_id"]: document for document in collection.find()}


def assert_user_as_before(collection: Any, old_key: str) -> None:
    """The pre-login session is intact under the old key; nothing else lasts."""
    assert SessionStore(old_key).load() == {"cart": CART}, "the pre-login session is gone"
    provisional_until = utc_now() + PROVISIONAL_LIFETIME + timedelta(seconds=5)
    for key, document in documents(collection).items():
        if key == old_key:
            assert "replaces" not in document
            continue
        # The new key never reached the browser: its document must not last.
        assert document["expire_date"] <= provisional_until, "a new document outlives the login"
        assert document.get("replaces") == [old_key]


def assert_logged_in(collection: Any, old_key: str, new_key: str) -> None:
    """The authenticated session has the new key; the old key authenticates nobody."""
    assert new_key != old_key
    assert SESSION_KEY in SessionStore(new_key).load()
    assert SESSION_KEY not in SessionStore(old_key).load(), "the old key is authenticated"


def assert_key_change_completed(collection: Any, new_key: str) -> None:
    """After the next load of the new session: one document, lasting, nothing pending."""
    stored = documents(collection)
    assert list(stored) == [new_key]
    assert "replaces" not in stored[new_key]
    assert stored[new_key]["expire_date"] > utc_now() + timedelta(days=1)


def check_outcome(
    fault: Fault, collection: Any, old_key: str, new_key: str | None, fail_command: FailCommand
) -> None:
    """Check what the failed login left, then what the next request leaves."""
    if not fault.login_succeeds:
        assert new_key is None or new_key != old_key
        assert_user_as_before(collection, old_key)
        fail_command.off()
        # The old cookie goes on working: the visitor can retry.
        again = SessionStore(old_key)
        assert again["cart"] == CART
        # The next successful request leaves no other document.
        assert set(documents(collection)) == {old_key}
        again["cart"] = {"apple": 3}
        again.save()
        assert SessionStore(old_key).load() == {"cart": {"apple": 3}}
        return
    assert new_key is not None
    assert_logged_in(collection, old_key, new_key)
    # Until the next request of the new session, the old document may remain,
    # holding the pre-login data only (asserted above).
    assert set(documents(collection)) <= {old_key, new_key}
    fail_command.off()
    assert SESSION_KEY in SessionStore(new_key).load()  # the next request
    assert_key_change_completed(collection, new_key)


# --- through the API ---------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_failed_key_change_leaves_the_user_as_they_were(
    fault: Fault,
    fail_command: FailCommand,
    sessions_collection: Any,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name, value in fault.settings.items():
        setattr(settings, name, value)
    old_key = pre_login_session()
    store = SessionStore(old_key)
    assert store["cart"] == CART  # the login request has read the session
    fail_command.arm([fault.command], mode=fault.mode, **fault.data)

    new_key: str | None = None
    with caplog.at_level(logging.WARNING, logger="mongo_sessions"):
        try:
            store.cycle_key()
            new_key = store.session_key
            authenticate(store)
            store.save()  # SessionMiddleware, at the end of the request
        except SessionStoreError as e:
            assert fault.raises is not None, f"the login failed: {e}"
            assert type(e) is fault.raises
            assert old_key not in str(e)
        else:
            assert fault.raises is None, "the login reported success"
            assert "key change is not complete" in caplog.text
        assert old_key not in caplog.text

    check_outcome(fault, sessions_collection, old_key, new_key, fail_command)


@requires_async_api
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
async def test_failed_async_key_change_leaves_the_user_as_they_were(
    fault: Fault, fail_command: FailCommand, sessions_collection: Any, settings: Any
) -> None:
    for name, value in fault.settings.items():
        setattr(settings, name, value)
    old_key = pre_login_session()
    store = SessionStore(old_key)
    assert await store.aget("cart") == CART
    fail_command.arm([fault.command], mode=fault.mode, **fault.data)

    new_key: str | None = None
    try:
        await store.acycle_key()
        new_key = store.session_key
        authenticate(store)
        await store.asave()
    except SessionStoreError as e:
        assert fault.raises is not None, f"the login failed: {e}"
        assert type(e) is fault.raises
    else:
        assert fault.raises is None, "the login reported success"

    if not fault.login_succeeds:
        # The async load of the next request leaves no other document.
        fail_command.off()
        assert await SessionStore(old_key).aload() == {"cart": CART}
        assert set(documents(sessions_collection)) == {old_key}
    check_outcome(fault, sessions_collection, old_key, new_key, fail_command)


def test_completed_key_change_leaves_one_document(sessions_collection: Any) -> None:
    old_key = pre_login_session()
    store = SessionStore(old_key)
    store.cycle_key()
    # Until the save, the old document is kept (Django's contract: not exists()).
    assert not store.exists(old_key)
    assert set(documents(sessions_collection)) == {old_key, store.session_key}
    authenticate(store)
    store.save()
    assert store.session_key is not None
    assert_logged_in(sessions_collection, old_key, store.session_key)
    assert_key_change_completed(sessions_collection, store.session_key)


def test_logout_in_the_login_request_deletes_both_documents(sessions_collection: Any) -> None:
    old_key = pre_login_session()
    store = SessionStore(old_key)
    store.cycle_key()
    authenticate(store)
    store.flush()
    assert documents(sessions_collection) == {}


def test_two_key_changes_before_the_save_leave_one_document(sessions_collection: Any) -> None:
    old_key = pre_login_session()
    store = SessionStore(old_key)
    store.cycle_key()
    store.cycle_key()
    authenticate(store)
    store.save()
    assert store.session_key is not None
    assert_key_change_completed(sessions_collection, store.session_key)


def test_the_cleanup_of_a_failed_login_never_deletes_a_session_in_use(
    sessions_collection: Any,
) -> None:
    old_key = pre_login_session()
    store = SessionStore(old_key)
    store.cycle_key()
    authenticate(store)
    store.save()  # the key change completed: the new document is no longer provisional
    new_key = store.session_key
    assert new_key is not None
    key_change._remember_abandoned(new_key)  # as if a failed login had left it
    assert SESSION_KEY in SessionStore(new_key).load()  # a load runs the cleanup
    assert set(documents(sessions_collection)) == {new_key}
    assert not key_change.abandoned_documents


# --- through the demo's /login/ form ------------------------------------------------


@pytest.fixture
def demo_site(settings: Any) -> Iterator[None]:
    """The demo's URLs and middleware, in this process (Django's test client)."""
    project = str(REPO_ROOT / "example_project")
    sys.path.insert(0, project)
    try:
        from demo import settings as demo_settings

        settings.MIDDLEWARE = demo_settings.MIDDLEWARE
        settings.ROOT_URLCONF = "tests.demo_urls"
        yield
    finally:
        sys.path.remove(project)


def logged_in_as(browser: Client) -> str | None:
    user: str | None = browser.get("/whoami/").json()["user"]
    return user


@pytest.mark.django_db
@pytest.mark.usefixtures("demo_site")
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_failed_login_through_the_demo_form(
    fault: Fault, fail_command: FailCommand, sessions_collection: Any, settings: Any
) -> None:
    for name, value in fault.settings.items():
        setattr(settings, name, value)
    User.objects.create_user("alice", password=PASSWORD)
    browser = Client(raise_request_exception=False)
    assert browser.post("/cart/add/", {"item": "apple"}).status_code == 302
    assert browser.post("/cart/add/", {"item": "apple"}).status_code == 302
    old_key = browser.cookies["sessionid"].value
    assert SessionStore(old_key).load() == {"cart": CART}
    fail_command.arm([fault.command], mode=fault.mode, **fault.data)

    response = browser.post("/login/", {"username": "alice", "password": PASSWORD})

    new_cookie = response.cookies.get("sessionid")
    if not fault.login_succeeds:
        assert response.status_code == 500
        assert new_cookie is None, "a failed login set a cookie"
        assert browser.cookies["sessionid"].value == old_key
        assert_user_as_before(sessions_collection, old_key)
        fail_command.off()
        assert logged_in_as(browser) is None
        # That next request, with the old cookie, left no other document.
        assert set(documents(sessions_collection)) == {old_key}
        # The cart is there, and the old cookie still works for it.
        assert browser.post("/cart/add/", {"item": "apple"}).status_code == 302
        assert SessionStore(old_key).load() == {"cart": {"apple": 3}}
        # Logging in again works, and completes.
        retry = browser.post("/login/", {"username": "alice", "password": PASSWORD})
        assert retry.status_code == 302
        assert logged_in_as(browser) == "alice"
        new_key = browser.cookies["sessionid"].value
        assert SessionStore(new_key).load()["cart"] == {"apple": 3}
        assert sessions_collection.count_documents({"_id": old_key}) == 0
        return
    assert response.status_code == 302
    assert new_cookie is not None
    new_key = new_cookie.value
    assert_logged_in(sessions_collection, old_key, new_key)
    assert SessionStore(new_key).load()["cart"] == CART
    fail_command.off()
    assert logged_in_as(browser) == "alice"  # the next request completes the change
    assert_key_change_completed(sessions_collection, new_key)


def test_unanswered_key_change_write_raises_at_once_for_the_rest_of_the_request(
    fail_command: FailCommand, settings: Any, sessions_collection: Any
) -> None:
    settings.MONGO_SESSIONS_TIMEOUT = TIMEOUT
    old_key = pre_login_session()
    store = SessionStore(old_key)
    store.load()
    fail_command.arm(["insert"], mode={"times": 1}, **BLOCKED)
    with pytest.raises(SessionStoreOutcomeUnknown):
        store.cycle_key()
    assert store.session_key == old_key  # the store is as it was
    with pytest.raises(SessionStoreUnavailable, match="not sent"):
        store.save()
    # The server holds the insert, then may apply it: once it is done, the next
    # request's load deletes the new document (its key never reached the browser).
    # (mongod ends it at its maxTimeMS instead: then nothing appears.)
    deadline = time.monotonic() + BLOCKED["blockTimeMS"] / 1000 + 3
    while sessions_collection.count_documents({}) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert SessionStore(old_key).load() == {"cart": CART}
    assert set(documents(sessions_collection)) == {old_key}
