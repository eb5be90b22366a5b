"""No expired key comes back: saving a session whose document has expired raises UpdateError.

MongoDB's TTL monitor removes an expired document up to a minute (or, without
the TTL index, never) after its ``expire_date``. Until then the document is
still there, and a save must treat it as Django's database engine treats an
expired row: gone. Django's db engine, asked to save an expired session it has
not read (``SessionStore(key).save()``), loads it, finds it expired, forgets the
key, and its forced update of a fresh key matches no row: UpdateError. This
engine does the same, and also when the session expired between its load and
its save (the update only matches a live document). SessionMiddleware turns
UpdateError into SessionInterrupted (a 400), as for a session deleted by a
concurrent logout; a request that reads the session first gets a fresh key.

Also here: ``asave()`` marks the session accessed, as ``save()`` does, through
Django's own ``_aget_session`` (Django 5.1+).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.contrib.sessions.models import Session
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path

from mongo_sessions.clock import utc_now
from mongo_sessions.session import SessionStore
from tests.logins import saved_session
from tests.support import requires_async_api


@pytest.fixture(autouse=True)
def no_ttl_index(settings: Any) -> None:
    """Without the TTL index, an expired document stays until something deletes it."""
    settings.MONGO_SESSIONS_AUTO_INDEX = False


def expire(collection: Any, key: str) -> dict[str, Any]:
    """Move the document's expiry into the past, as time passing would; return it."""
    collection.update_one({"_id": key}, {"$set": {"expire_date": utc_now() - timedelta(seconds=1)}})
    document = collection.find_one({"_id": key})
    assert document is not None
    return document


def saved(**data: Any) -> str:
    """Save a new session holding ``data``; return its key."""
    return saved_session(**data).session_key or ""


def test_save_of_an_expired_session_not_read_raises_update_error(
    sessions_collection: Any,
) -> None:
    key = saved(cart={"apple": 1})
    before = expire(sessions_collection, key)

    store = SessionStore(key)
    with pytest.raises(UpdateError):
        store.save()

    assert sessions_collection.find_one({"_id": key}) == before, "the expired document changed"
    assert sessions_collection.count_documents({}) == 1


def test_save_of_a_session_that_expired_after_its_load_raises_update_error(
    sessions_collection: Any,
) -> None:
    key = saved(cart={"apple": 1})
    store = SessionStore(key)
    store["cart"] = {"apple": 2}  # loaded while live
    before = expire(sessions_collection, key)

    with pytest.raises(UpdateError):
        store.save()

    assert sessions_collection.find_one({"_id": key}) == before
    assert SessionStore(key).load() == {}


@requires_async_api
async def test_async_save_of_an_expired_session_raises_update_error(
    sessions_collection: Any,
) -> None:
    key = saved(cart={"apple": 1})
    before = expire(sessions_collection, key)
    with pytest.raises(UpdateError):
        await SessionStore(key).asave()
    assert sessions_collection.find_one({"_id": key}) == before

    key = saved(cart={"apple": 1})
    store = SessionStore(key)
    await store.aset("cart", {"apple": 2})
    before = expire(sessions_collection, key)
    with pytest.raises(UpdateError):
        await store.asave()
    assert sessions_collection.find_one({"_id": key}) == before


@pytest.mark.django_db
def test_djangos_database_engine_does_the_same() -> None:
    """The behaviour copied: Django's db engine on an expired, unread session."""
    store = DatabaseSessionStore()
    store["cart"] = {"apple": 1}
    store.save()
    key = store.session_key
    Session.objects.filter(session_key=key).update(expire_date=utc_now() - timedelta(seconds=1))
    with pytest.raises(UpdateError):
        DatabaseSessionStore(key).save()
    assert Session.objects.filter(session_key=key).count() == 1


def counter(request: HttpRequest) -> HttpResponse:
    request.session["visits"] = request.session.get("visits", 0) + 1
    return HttpResponse(str(request.session["visits"]))


urlpatterns = [path("counter/", counter)]


@pytest.mark.urls(__name__)
def test_request_with_an_expired_cookie_gets_a_fresh_key(sessions_collection: Any) -> None:
    browser = Client()
    assert browser.get("/counter/").content == b"1"
    key = browser.cookies["sessionid"].value
    before = expire(sessions_collection, key)

    assert browser.get("/counter/").content == b"1"
    assert browser.cookies["sessionid"].value != key
    assert sessions_collection.find_one({"_id": key}) == before


# --- accessed, as Django's _get_session / _aget_session set it ----------------------


def test_save_marks_the_session_accessed(sessions_collection: Any) -> None:
    store = SessionStore(saved(visits=1))
    store.save()
    assert store.accessed


@requires_async_api
async def test_async_save_marks_the_session_accessed(sessions_collection: Any) -> None:
    store = SessionStore(saved(visits=1))
    await store.asave()
    assert store.accessed
    assert store._session_cache == {"visits": 1}
