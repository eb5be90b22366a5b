"""How many MongoDB commands each session operation sends (counted by command monitoring)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from mongo_sessions import connection
from mongo_sessions.session import SessionStore
from mongo_sessions.testing import CommandCounter
from tests.support import requires_async_api


@pytest.fixture
def counter(command_counter: CommandCounter) -> CommandCounter:
    """A counter on a warm client: indexes already ensured, as in a running site."""
    connection.get_collection()
    command_counter.reset()
    return command_counter


def saved_session(data: dict[str, Any] | None = None) -> SessionStore:
    session = SessionStore()
    session.update(data or {"a": 1})
    session.save()
    return session


def test_create_is_one_insert(counter: CommandCounter) -> None:
    session = SessionStore()
    session["a"] = 1
    session.save()
    assert counter.commands == ["insert"]


def test_load_is_one_find(counter: CommandCounter) -> None:
    key = saved_session().session_key
    counter.reset()
    assert SessionStore(key).load() == {"a": 1}
    assert counter.commands == ["find"]


def test_load_of_unknown_key_is_one_find(counter: CommandCounter) -> None:
    SessionStore("e" * 32).load()
    assert counter.commands == ["find"]


def test_load_of_malformed_key_sends_nothing(counter: CommandCounter) -> None:
    SessionStore('{"$gt": ""}').load()
    assert counter.commands == []


def test_save_of_modified_session_is_one_update(counter: CommandCounter) -> None:
    key = saved_session().session_key
    session = SessionStore(key)
    session.get("a")  # loads it, as a view reading the session does
    counter.reset()
    session["a"] = 2
    session.save()
    assert counter.commands == ["update"]


def test_delete_is_one_delete(counter: CommandCounter) -> None:
    session = saved_session()
    counter.reset()
    session.delete()
    assert counter.commands == ["delete"]


def test_cycle_key_and_its_save_are_four_writes(counter: CommandCounter) -> None:
    session = saved_session()
    session.get("a")  # loads it, as a view reading the session does
    counter.reset()
    session.cycle_key()
    assert counter.commands == ["insert"]  # the old document stays until the save
    counter.reset()
    session.save()  # as SessionMiddleware does at the end of the login request
    # The data (the new document still provisional), the old document's
    # deletion, then the new document's lasting expiry.
    assert counter.commands == ["update", "delete", "update"]


def _read_only_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(request.session.get("a")))


def _writing_view(request: HttpRequest) -> HttpResponse:
    request.session["a"] = request.session.get("a", 0) + 1
    return HttpResponse(str(request.session["a"]))


def run_request(view: Any, key: str | None) -> HttpResponse:
    request = RequestFactory().get("/")
    if key:
        request.COOKIES["sessionid"] = key
    return SessionMiddleware(view)(request)


def test_request_reading_without_change_writes_nothing(counter: CommandCounter) -> None:
    key = saved_session().session_key
    counter.reset()
    response = run_request(_read_only_view, key)
    assert response.content == b"1"
    assert counter.commands == ["find"]
    assert counter.writes == []


def test_request_cycle_load_modify_save_is_two_commands(counter: CommandCounter) -> None:
    key = saved_session().session_key
    counter.reset()
    response = run_request(_writing_view, key)
    assert response.content == b"2"
    assert counter.commands == ["find", "update"]


@requires_async_api
async def test_async_counts_match_sync(command_counter: CommandCounter) -> None:
    await connection.aget_collection()
    command_counter.reset()
    session = SessionStore()
    await session.aset("a", 1)
    await session.asave()
    assert command_counter.commands == ["insert"]
    command_counter.reset()
    again = SessionStore(session.session_key)
    await again.aget("a")
    assert command_counter.commands == ["find"]
    command_counter.reset()
    await again.aset("a", 2)
    await again.asave()
    assert command_counter.commands == ["update"]
    command_counter.reset()
    await again.acycle_key()
    assert command_counter.commands == ["insert"]
    command_counter.reset()
    await again.asave()
    assert command_counter.commands == ["update", "delete", "update"]
    command_counter.reset()
    await again.adelete()
    assert command_counter.commands == ["delete"]
