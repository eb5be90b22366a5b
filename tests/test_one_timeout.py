"""One timeout per request: after MongoDB fails to answer, the request's store stops asking.

A request with a logged-in user's cookie, against a stopped server (the session
was stored, then nothing answers on the server's address), through Django's
test client with SessionMiddleware and AuthenticationMiddleware. The first session
access waits for MONGO_SESSIONS_TIMEOUT; every later one in the same request
(``request.user`` again, the session middleware computing the cookie expiry and
saving, Django's DEBUG error page, which shows ``request.user``) fails at once
with the same SessionStoreUnavailable. The request ends within the timeout plus
1 s, with DEBUG True and False, and the DEBUG page does not show the session key.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client
from django.urls import path

from mongo_sessions import session
from mongo_sessions.exceptions import SessionStoreError, SessionStoreUnavailable
from mongo_sessions.operation import mongo_operation
from tests.servers import ChildProcess, free_port
from tests.support import TEST_DB, requires_async_api

TIMEOUT = 2.0  # MONGO_SESSIONS_TIMEOUT of these tests, seconds
BOUND = TIMEOUT + 1.0  # what a whole request may take with the server stopped


def whoami(request: HttpRequest) -> HttpResponse:
    """A page that shows the user: the first session access is request.user."""
    return HttpResponse(f"user: {request.user}")


def degraded(request: HttpRequest) -> HttpResponse:
    """A page that carries on without the session, then shows the user."""
    try:
        visits = request.session.get("visits", 0)
    except SessionStoreError:
        visits = None
    return HttpResponse(f"visits: {visits}; user: {request.user}")


def counter(request: HttpRequest) -> HttpResponse:
    request.session["visits"] = request.session.get("visits", 0) + 1
    return HttpResponse(f"visits: {request.session['visits']}")


async def async_whoami(request: HttpRequest) -> HttpResponse:
    user = await request.auser()  # type: ignore[attr-defined]
    visits = await request.session.aget("visits", 0)  # type: ignore[attr-defined]
    return HttpResponse(f"user: {user}; visits: {visits}")


urlpatterns = [
    path("whoami/", whoami),
    path("degraded/", degraded),
    path("counter/", counter),
    path("async-whoami/", async_whoami),
]


def stop_the_server(settings: Any) -> None:
    """Point the package at an address where nothing answers, as after the server stopped."""
    settings.MONGO_SESSIONS_URL = f"mongodb://127.0.0.1:{free_port()}/{TEST_DB}"


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The session operations that went to MongoDB (each one may wait a timeout)."""
    calls: list[str] = []
    real = mongo_operation.__enter__

    def counting(self: mongo_operation) -> None:
        calls.append(self.operation)
        real(self)

    # Every bound operation enters mongo_operation (the store's own is a subclass).
    monkeypatch.setattr(mongo_operation, "__enter__", counting)
    return calls


def logged_in_browser() -> tuple[Client, str]:
    user = User.objects.create_user("alice", password="not-used-here")
    browser = Client(raise_request_exception=False)
    browser.force_login(user)
    assert browser.get("/counter/").content == b"visits: 1"
    return browser, browser.cookies["sessionid"].value


@pytest.mark.urls(__name__)
@pytest.mark.django_db
@pytest.mark.parametrize("debug", [True, False], ids=["DEBUG=True", "DEBUG=False"])
@pytest.mark.parametrize(
    ("page", "save_every_request"),
    [("/whoami/", False), ("/degraded/", False), ("/whoami/", True)],
    ids=["user", "degraded-page", "save-every-request"],
)
def test_request_against_a_stopped_server_waits_one_timeout(
    settings: Any,
    round_trips: list[str],
    debug: bool,
    page: str,
    save_every_request: bool,
) -> None:
    settings.MONGO_SESSIONS_TIMEOUT = TIMEOUT
    settings.SESSION_SAVE_EVERY_REQUEST = save_every_request
    browser, key = logged_in_browser()
    stop_the_server(settings)
    settings.DEBUG = debug
    round_trips.clear()

    started = time.monotonic()
    response = browser.get(page)
    elapsed = time.monotonic() - started

    assert response.status_code == 500
    assert round_trips == ["load"], "the request went to MongoDB more than once"
    assert elapsed < BOUND, f"the request took {elapsed:.2f} s (timeout {TIMEOUT} s)"
    assert key.encode() not in response.content, "the session key is on the error page"
    if debug:
        assert b"SessionStoreUnavailable" in response.content


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_every_later_access_raises_the_same_error_at_once(
    own_server: ChildProcess, settings: Any, round_trips: list[str]
) -> None:
    settings.MONGO_SESSIONS_TIMEOUT = TIMEOUT
    _, key = logged_in_browser()
    own_server.stop()
    round_trips.clear()
    store = session.SessionStore(key)

    with pytest.raises(SessionStoreUnavailable) as first:
        store.load()
    later: list[SessionStoreError] = []
    started = time.monotonic()
    for access in (store.load, store.save, lambda: store.exists(key), store.delete):
        with pytest.raises(SessionStoreUnavailable) as raised:
            access()
        later.append(raised.value)
    assert time.monotonic() - started < 0.5  # no waiting at all, whatever the machine

    assert round_trips == ["load"]
    for error in later:
        assert error.__cause__ is first.value
        assert first.value.detail in error.detail
        assert error.detail.startswith("not sent: MongoDB did not answer this session's load")
        assert key not in str(error)


@requires_async_api
@pytest.mark.urls(__name__)
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("debug", [True, False], ids=["DEBUG=True", "DEBUG=False"])
async def test_async_view_against_a_stopped_server_waits_one_timeout(
    settings: Any, round_trips: list[str], debug: bool
) -> None:
    from asgiref.sync import sync_to_async

    settings.MONGO_SESSIONS_TIMEOUT = TIMEOUT
    _, key = await sync_to_async(logged_in_browser)()
    stop_the_server(settings)
    settings.DEBUG = debug
    round_trips.clear()
    client = AsyncClient(raise_request_exception=False)
    client.cookies["sessionid"] = key

    started = time.monotonic()
    response = await client.get("/async-whoami/")
    elapsed = time.monotonic() - started

    assert response.status_code == 500
    assert round_trips == ["load"]
    assert elapsed < BOUND, f"the request took {elapsed:.2f} s (timeout {TIMEOUT} s)"
    assert key.encode() not in response.content
