"""MONGO_SESSIONS_TOUCH_AFTER: sliding expiry without a write per request."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import bson
import pytest
from django.conf import settings as django_settings
from django.contrib.sessions.exceptions import SessionInterrupted
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.http import HttpRequest, HttpResponse
from django.test import AsyncRequestFactory, RequestFactory
from pymongo import monitoring

from mongo_sessions import connection
from mongo_sessions.middleware import SessionMiddleware
from mongo_sessions.session import SessionStore
from mongo_sessions.testing import DRIVER_COMMANDS, HOUSEKEEPING_COMMANDS, WRITE_COMMANDS
from tests.support import StartedCommands, requires_async_api

TOUCH_AFTER = 300
AGE = 14 * 24 * 3600  # SESSION_COOKIE_AGE's default


class Recorder(StartedCommands):
    """Keep each command the package's clients send, with its body."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, dict[str, Any]]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        # Not the driver's own, nor the index creation's (a background thread's).
        if event.command_name not in DRIVER_COMMANDS | HOUSEKEEPING_COMMANDS:
            self.commands.append((event.command_name, copy.deepcopy(dict(event.command))))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.commands]

    @property
    def writes(self) -> list[dict[str, Any]]:
        return [body for name, body in self.commands if name in WRITE_COMMANDS]


@pytest.fixture
def recorder(settings: Any) -> Recorder:
    recorder = Recorder()
    settings.MONGO_SESSIONS_CLIENT_OPTIONS = {"event_listeners": [recorder]}
    settings.MONGO_SESSIONS_TOUCH_AFTER = TOUCH_AFTER
    connection.get_collection()  # a warm client: indexes ensured, as in a running site
    return recorder


def stored_session(data: dict[str, Any] | None = None) -> str:
    session = SessionStore()
    session.update(data if data is not None else {"cart": ["apple"]})
    session.save()
    assert session.session_key is not None
    return session.session_key


def age_stored_expiry(collection: Any, key: str, seconds: float) -> datetime:
    """Make the last extension ``seconds`` older, as if it had been written then."""
    document = collection.find_one({"_id": key})
    older: datetime = document["expire_date"] - timedelta(seconds=seconds)
    collection.update_one({"_id": key}, {"$set": {"expire_date": older}})
    return older.replace(tzinfo=timezone.utc) if older.tzinfo is None else older


def stored_expiry(collection: Any, key: str) -> datetime:
    value: datetime = collection.find_one({"_id": key})["expire_date"]
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def read_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(repr(request.session.get("cart")))


async def async_read_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(repr(await request.session.aget("cart")))


def run(middleware: type, view: Callable[[HttpRequest], HttpResponse], key: str) -> HttpResponse:
    request = RequestFactory().get("/")
    request.COOKIES[django_settings.SESSION_COOKIE_NAME] = key
    response: HttpResponse = middleware(view)(request)
    return response


async def arun(view: Callable[[HttpRequest], Awaitable[HttpResponse]], key: str) -> HttpResponse:
    request = AsyncRequestFactory().get("/")
    request.COOKIES[django_settings.SESSION_COOKIE_NAME] = key
    response: HttpResponse = await SessionMiddleware(view)(request)
    return response


# Django's middleware saves unmodified sessions only with SESSION_SAVE_EVERY_REQUEST;
# the package's middleware applies the rule with and without it.
STACKS = [
    pytest.param(DjangoSessionMiddleware, True, id="django-middleware-save-every-request"),
    pytest.param(SessionMiddleware, True, id="package-middleware-save-every-request"),
    pytest.param(SessionMiddleware, False, id="package-middleware"),
]


@pytest.mark.parametrize(("middleware", "save_every_request"), STACKS)
def test_within_the_window_ten_reads_send_ten_finds_and_no_write(
    settings: Any, recorder: Recorder, middleware: type, save_every_request: bool
) -> None:
    settings.SESSION_SAVE_EVERY_REQUEST = save_every_request
    key = stored_session()
    recorder.commands.clear()
    for _ in range(10):
        assert run(middleware, read_view, key).content == b"['apple']"
    assert recorder.names == ["find"] * 10
    assert recorder.writes == []


@pytest.mark.parametrize(("middleware", "save_every_request"), STACKS)
def test_past_the_window_one_update_of_the_expiry_alone(
    settings: Any,
    recorder: Recorder,
    sessions_collection: Any,
    middleware: type,
    save_every_request: bool,
) -> None:
    settings.SESSION_SAVE_EVERY_REQUEST = save_every_request
    key = stored_session()
    before = sessions_collection.find_one({"_id": key})
    older = age_stored_expiry(sessions_collection, key, TOUCH_AFTER + 5)
    recorder.commands.clear()
    for _ in range(10):
        run(middleware, read_view, key)
    assert recorder.names == ["find", "update"] + ["find"] * 9
    (update,) = recorder.writes
    (statement,) = update["updates"]
    assert statement["q"]["_id"] == key
    assert set(statement["u"]) == {"$set"}
    assert set(statement["u"]["$set"]) == {"expire_date"}
    extended = stored_expiry(sessions_collection, key)
    assert extended - older >= timedelta(seconds=TOUCH_AFTER)
    now = datetime.now(timezone.utc)
    assert now + timedelta(seconds=AGE - 60) < extended <= now + timedelta(seconds=AGE)
    after = sessions_collection.find_one({"_id": key})
    assert after["data"] == before["data"]


def test_the_update_does_not_grow_with_the_data(
    recorder: Recorder, sessions_collection: Any
) -> None:
    sizes = []
    for data in ({"n": 1}, {"blob": "x" * 200_000, "items": list(range(5000))}):
        key = stored_session(data)
        age_stored_expiry(sessions_collection, key, TOUCH_AFTER + 5)
        recorder.commands.clear()
        session = SessionStore(key)
        session.get("n")
        session.save()
        (update,) = recorder.writes
        sizes.append(len(bson.encode({"updates": update["updates"]})))
    assert sizes[0] == sizes[1]
    assert sizes[0] < 200


def test_a_modified_session_is_saved_in_full(
    settings: Any, recorder: Recorder, sessions_collection: Any
) -> None:
    settings.SESSION_SAVE_EVERY_REQUEST = True
    key = stored_session()

    def add_bread(request: HttpRequest) -> HttpResponse:
        request.session["cart"] = [*request.session["cart"], "bread"]
        return HttpResponse("ok")

    recorder.commands.clear()
    run(SessionMiddleware, add_bread, key)
    assert recorder.names == ["find", "update"]
    (statement,) = recorder.writes[0]["updates"]
    assert "data" in statement["u"]["$set"]
    assert SessionStore(key).load() == {"cart": ["apple", "bread"]}


@pytest.mark.parametrize("middleware", [DjangoSessionMiddleware, SessionMiddleware])
def test_a_change_in_place_is_saved_with_save_every_request(
    settings: Any, recorder: Recorder, middleware: type
) -> None:
    """SESSION_SAVE_EVERY_REQUEST saves what a view appended to a list in the session."""
    settings.SESSION_SAVE_EVERY_REQUEST = True
    key = stored_session()

    def append_in_place(request: HttpRequest) -> HttpResponse:
        request.session["cart"].append("coffee")  # modified stays False
        return HttpResponse("ok")

    recorder.commands.clear()
    run(middleware, append_in_place, key)
    assert recorder.names == ["find", "update"]
    assert SessionStore(key).load() == {"cart": ["apple", "coffee"]}


def test_an_explicit_save_keeps_a_change_in_place(
    recorder: Recorder, sessions_collection: Any
) -> None:
    key = stored_session()
    session = SessionStore(key)
    session["cart"].append("tea")  # modified stays False
    session.save()
    assert SessionStore(key).load() == {"cart": ["apple", "tea"]}


def test_without_save_every_request_a_change_in_place_is_not_saved_as_in_django(
    recorder: Recorder, sessions_collection: Any
) -> None:
    key = stored_session()
    age_stored_expiry(sessions_collection, key, TOUCH_AFTER + 5)

    def append_in_place(request: HttpRequest) -> HttpResponse:
        request.session["cart"].append("coffee")
        return HttpResponse("ok")

    recorder.commands.clear()
    run(SessionMiddleware, append_in_place, key)
    (statement,) = recorder.writes[0]["updates"]
    assert set(statement["u"]["$set"]) == {"expire_date"}  # the touch, nothing else
    assert SessionStore(key).load() == {"cart": ["apple"]}


def test_cookie_is_sent_again_only_when_the_expiry_moved(
    recorder: Recorder, sessions_collection: Any
) -> None:
    key = stored_session()
    within = run(SessionMiddleware, read_view, key)
    assert django_settings.SESSION_COOKIE_NAME not in within.cookies
    assert within.headers["Vary"] == "Cookie"  # the session was read
    age_stored_expiry(sessions_collection, key, TOUCH_AFTER + 5)
    past = run(SessionMiddleware, read_view, key)
    cookie = past.cookies[django_settings.SESSION_COOKIE_NAME]
    assert cookie.value == key
    assert AGE - 60 <= int(cookie["max-age"]) <= AGE
    assert past.headers["Vary"] == "Cookie"


def test_with_save_every_request_the_cookie_says_the_stored_expiry(
    settings: Any, recorder: Recorder, sessions_collection: Any
) -> None:
    """Within the window the stored expiry did not move: the cookie's age is what it has left."""
    settings.SESSION_SAVE_EVERY_REQUEST = True
    key = stored_session()
    age_stored_expiry(sessions_collection, key, TOUCH_AFTER - 100)
    recorder.commands.clear()
    response = run(SessionMiddleware, read_view, key)
    assert recorder.names == ["find"]
    max_age = int(response.cookies[django_settings.SESSION_COOKIE_NAME]["max-age"])
    assert AGE - (TOUCH_AFTER - 100) - 60 <= max_age <= AGE - (TOUCH_AFTER - 100)


def test_browser_close_sessions_keep_a_browser_session_cookie(
    recorder: Recorder, sessions_collection: Any
) -> None:
    session = SessionStore()
    session["cart"] = ["apple"]
    session.set_expiry(0)
    session.save()
    key = session.session_key
    assert key is not None
    age_stored_expiry(sessions_collection, key, TOUCH_AFTER + 5)
    recorder.commands.clear()
    response = run(SessionMiddleware, read_view, key)
    assert recorder.names == ["find", "update"]
    cookie = response.cookies[django_settings.SESSION_COOKIE_NAME]
    assert cookie.value == key
    assert cookie["max-age"] == ""
    assert cookie["expires"] == ""


def test_a_short_lifetime_is_extended_after_half_of_it(
    settings: Any, recorder: Recorder, sessions_collection: Any
) -> None:
    """set_expiry(120) with a 300 s window: the rule must not let an active session die."""
    session = SessionStore()
    session["cart"] = ["apple"]
    session.set_expiry(120)
    session.save()
    key = session.session_key
    assert key is not None
    age_stored_expiry(sessions_collection, key, 30)
    recorder.commands.clear()
    run(SessionMiddleware, read_view, key)
    assert recorder.writes == []
    age_stored_expiry(sessions_collection, key, 35)  # 65 s since the last extension
    run(SessionMiddleware, read_view, key)
    assert len(recorder.writes) == 1
    remaining = stored_expiry(sessions_collection, key) - datetime.now(timezone.utc)
    assert timedelta(seconds=100) < remaining <= timedelta(seconds=120)


def test_a_session_deleted_meanwhile_is_not_brought_back(
    recorder: Recorder, sessions_collection: Any
) -> None:
    key = stored_session()
    age_stored_expiry(sessions_collection, key, TOUCH_AFTER + 5)

    def logged_out_elsewhere(request: HttpRequest) -> HttpResponse:
        request.session.get("cart")
        sessions_collection.delete_one({"_id": key})
        return HttpResponse("ok")

    with pytest.raises(SessionInterrupted):
        run(SessionMiddleware, logged_out_elsewhere, key)
    assert sessions_collection.count_documents({}) == 0


def test_without_the_setting_nothing_changes(
    settings: Any, recorder: Recorder, sessions_collection: Any
) -> None:
    settings.MONGO_SESSIONS_TOUCH_AFTER = None
    key = stored_session()
    age_stored_expiry(sessions_collection, key, 3600)
    recorder.commands.clear()
    response = run(SessionMiddleware, read_view, key)
    assert recorder.names == ["find"]
    assert django_settings.SESSION_COOKIE_NAME not in response.cookies
    settings.SESSION_SAVE_EVERY_REQUEST = True
    run(SessionMiddleware, read_view, key)
    assert recorder.names == ["find", "find", "update"]
    (statement,) = recorder.writes[0]["updates"]
    assert "data" in statement["u"]["$set"]


@requires_async_api
@pytest.mark.parametrize("save_every_request", [True, False])
async def test_async_within_and_past_the_window(
    settings: Any, recorder: Recorder, sessions_collection: Any, save_every_request: bool
) -> None:
    settings.SESSION_SAVE_EVERY_REQUEST = save_every_request
    session = SessionStore()
    await session.aset("cart", ["apple"])
    await session.asave()
    key = session.session_key
    assert key is not None
    await connection.aget_collection()
    recorder.commands.clear()
    for _ in range(10):
        assert (await arun(async_read_view, key)).content == b"['apple']"
    assert recorder.names == ["find"] * 10
    older = age_stored_expiry(sessions_collection, key, TOUCH_AFTER + 5)
    recorder.commands.clear()
    response = await arun(async_read_view, key)
    assert recorder.names == ["find", "update"]
    (statement,) = recorder.writes[0]["updates"]
    assert set(statement["u"]["$set"]) == {"expire_date"}
    assert stored_expiry(sessions_collection, key) - older >= timedelta(seconds=TOUCH_AFTER)
    assert response.cookies[django_settings.SESSION_COOKIE_NAME].value == key


@requires_async_api
async def test_async_store_save_of_an_unmodified_session(
    recorder: Recorder, sessions_collection: Any
) -> None:
    key = stored_session()
    await connection.aget_collection()
    recorder.commands.clear()
    session = SessionStore(key)
    assert await session.aget("cart") == ["apple"]
    await session.asave()
    assert recorder.names == ["find"]
    age_stored_expiry(sessions_collection, key, TOUCH_AFTER + 5)
    session = SessionStore(key)
    await session.aget("cart")
    await session.asave()
    assert recorder.names == ["find", "find", "update"]
