"""The session contract of Django's own backends, in sync and async form, in each format."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.contrib.sessions.backends.base import CreateError, UpdateError
from django.core import signing
from django.core.management import call_command
from pymongo.asynchronous.collection import AsyncCollection

from mongo_sessions import connection
from mongo_sessions.session import SessionStore
from tests.support import requires_async_api


@pytest.fixture(autouse=True, params=["signed", "document"])
def session_format(request: pytest.FixtureRequest, settings: Any) -> str:
    """Every test of the contract runs with each MONGO_SESSIONS_FORMAT."""
    settings.MONGO_SESSIONS_FORMAT = request.param
    return str(request.param)


def stored(collection: Any, key: str | None) -> dict[str, Any] | None:
    return collection.find_one({"_id": key}) if key else None


def test_new_session_has_no_key_until_saved(sessions_collection: Any) -> None:
    session = SessionStore()
    assert session.session_key is None
    session["colour"] = "blue"
    session.save()
    assert session.session_key is not None
    document = stored(sessions_collection, session.session_key)
    assert document is not None
    assert SessionStore().decode(document["data"]) == {"colour": "blue"}
    assert set(document) == {"_id", "data", "expire_date", "created_at", "create_id"}


def test_load_returns_saved_data(sessions_collection: Any) -> None:
    session = SessionStore()
    session.update({"a": 1, "nested": {"b": [1, 2]}})
    session.save()
    assert SessionStore(session.session_key).load() == {"a": 1, "nested": {"b": [1, 2]}}


def test_load_of_unknown_key_creates_no_record(sessions_collection: Any) -> None:
    unknown = "a" * 32
    session = SessionStore(unknown)
    assert session.load() == {}
    assert session.session_key is None
    assert sessions_collection.count_documents({}) == 0
    # A write after that gets a fresh key, never the one the client sent.
    session["x"] = 1
    session.save()
    assert session.session_key not in (None, unknown)
    assert stored(sessions_collection, unknown) is None


def test_exists(sessions_collection: Any) -> None:
    session = SessionStore()
    session.create()
    assert session.exists(session.session_key)
    assert not session.exists("b" * 32)
    assert not session.exists("not a valid key!")


def test_create_makes_a_new_unique_key_each_time(sessions_collection: Any) -> None:
    keys = set()
    for _ in range(20):
        session = SessionStore()
        session.create()
        assert session.modified
        keys.add(session.session_key)
    assert len(keys) == 20
    assert sessions_collection.count_documents({}) == 20


def test_save_must_create_on_existing_key_raises_create_error(sessions_collection: Any) -> None:
    session = SessionStore()
    session["v"] = "first"
    session.save()
    clash = SessionStore(session.session_key)
    clash._session_cache = {"v": "second"}
    with pytest.raises(CreateError):
        clash.save(must_create=True)
    assert SessionStore(session.session_key)["v"] == "first"


def test_create_retries_with_another_key_on_collision(
    sessions_collection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = SessionStore()
    taken.create()
    keys = iter([taken.session_key, "c" * 32])
    monkeypatch.setattr(SessionStore, "_get_new_session_key", lambda self: next(keys))
    session = SessionStore()
    session.create()
    assert session.session_key == "c" * 32


def test_save_of_a_session_deleted_elsewhere_raises_update_error(sessions_collection: Any) -> None:
    session = SessionStore()
    session["v"] = 1
    session.save()
    key = session.session_key
    SessionStore(key).delete()
    session["v"] = 2
    with pytest.raises(UpdateError):
        session.save()
    assert stored(sessions_collection, key) is None


def test_delete(sessions_collection: Any) -> None:
    session = SessionStore()
    session.create()
    other = SessionStore()
    other.create()
    session.delete(other.session_key)
    assert stored(sessions_collection, other.session_key) is None
    session.delete()
    assert stored(sessions_collection, session.session_key) is None
    SessionStore().delete("invalid key")  # no error, nothing sent


def test_cycle_key_keeps_data_and_removes_old_document(sessions_collection: Any) -> None:
    session = SessionStore()
    session["cart"] = ["apple"]
    session.save()
    old_key = session.session_key
    session.cycle_key()
    assert session.session_key != old_key
    assert not session.exists(old_key)  # Django's contract (its own test_cycle)
    assert list(session.items()) == [("cart", ["apple"])]
    # The old document goes once the session is saved under the new key (as
    # SessionMiddleware does at the end of the request), not before.
    session.save()
    assert stored(sessions_collection, old_key) is None
    assert SessionStore(session.session_key)["cart"] == ["apple"]
    assert sessions_collection.count_documents({}) == 1


def test_flush_removes_document_and_data(sessions_collection: Any) -> None:
    session = SessionStore()
    session["a"] = 1
    session.save()
    key = session.session_key
    session.flush()
    assert session.session_key is None
    assert dict(session.items()) == {}
    assert stored(sessions_collection, key) is None


def test_invalid_keys_are_no_session(sessions_collection: Any) -> None:
    for key in ["", "short", "A" * 32, "a" * 65, '{"$gt": ""}', "a.b" * 10, "ä" * 32, "a\x00" * 16]:
        session = SessionStore(key)
        assert session.session_key is None, key
        assert session.load() == {}


def test_corrupted_data_loads_empty_and_is_logged(
    sessions_collection: Any, caplog: pytest.LogCaptureFixture
) -> None:
    session = SessionStore()
    session["a"] = 1
    session.save()
    sessions_collection.update_one({"_id": session.session_key}, {"$set": {"data": "x:y:z"}})
    with caplog.at_level(logging.WARNING, logger="django.security.SuspiciousSession"):
        assert SessionStore(session.session_key).load() == {}
    assert any(r.name == "django.security.SuspiciousSession" for r in caplog.records)


def test_user_id_field_follows_login_and_logout(sessions_collection: Any) -> None:
    session = SessionStore()
    session["_auth_user_id"] = "42"
    session.save()
    assert stored(sessions_collection, session.session_key)["user_id"] == "42"
    del session["_auth_user_id"]
    session.save()
    assert "user_id" not in stored(sessions_collection, session.session_key)


def test_clear_expired_and_clearsessions(sessions_collection: Any, settings: Any) -> None:
    # No TTL index: the monitor must not remove the expired documents before we do.
    settings.MONGO_SESSIONS_AUTO_INDEX = False
    live, dead = SessionStore(), SessionStore()
    live.create()
    dead.set_expiry(-10)  # already past: only clear_expired removes it here
    dead.save()
    assert sessions_collection.count_documents({}) == 2
    SessionStore.clear_expired()
    assert stored(sessions_collection, dead.session_key) is None
    assert stored(sessions_collection, live.session_key) is not None
    dead2 = SessionStore()
    dead2.set_expiry(-10)
    dead2.save()
    call_command("clearsessions")
    assert sessions_collection.count_documents({}) == 1


def test_data_is_stored_in_the_configured_format(
    sessions_collection: Any, session_format: str
) -> None:
    session = SessionStore()
    session["a"] = 1
    session.save()
    data = stored(sessions_collection, session.session_key)["data"]
    if session_format == "signed":
        # Signed with the salt of Django's database engine: its sessions are ours.
        assert signing.loads(data, salt="django.contrib.sessions.SessionStore") == {"a": 1}
    else:
        assert data == {"a": 1}  # a sub-document, as mongosh shows it


# Async twins.


@requires_async_api
async def test_async_create_load_save_delete(sessions_collection: Any) -> None:
    session = SessionStore()
    await session.aset("a", 1)
    await session.asave()
    key = session.session_key
    assert key is not None
    assert await SessionStore().aexists(key)
    again = SessionStore(key)
    assert await again.aget("a") == 1
    await again.aset("a", 2)
    await again.asave()
    assert (await SessionStore(key).aload()) == {"a": 2}
    await again.adelete()
    assert not await SessionStore().aexists(key)


@requires_async_api
async def test_async_unknown_key_and_update_error(sessions_collection: Any) -> None:
    session = SessionStore("d" * 32)
    assert await session.aload() == {}
    assert session.session_key is None
    assert sessions_collection.count_documents({}) == 0
    live = SessionStore()
    await live.aset("v", 1)
    await live.asave()
    await SessionStore().adelete(live.session_key)
    await live.aset("v", 2)
    with pytest.raises(UpdateError):
        await live.asave()
    assert sessions_collection.count_documents({}) == 0


@requires_async_api
async def test_async_create_error_cycle_key_flush(sessions_collection: Any) -> None:
    session = SessionStore()
    await session.aset("k", "v")
    await session.asave()
    clash = SessionStore(session.session_key)
    clash._session_cache = {}
    with pytest.raises(CreateError):
        await clash.asave(must_create=True)
    old = session.session_key
    await session.acycle_key()
    assert session.session_key != old
    assert not await session.aexists(old)
    await session.asave()
    assert stored(sessions_collection, old) is None
    assert await SessionStore(session.session_key).aget("k") == "v"
    key = session.session_key
    await session.aflush()
    assert stored(sessions_collection, key) is None


@requires_async_api
async def test_async_clear_expired(sessions_collection: Any, settings: Any) -> None:
    settings.MONGO_SESSIONS_AUTO_INDEX = False
    live, dead = SessionStore(), SessionStore()
    await live.acreate()
    await dead.aset_expiry(-10)
    await dead.asave()
    assert sessions_collection.count_documents({}) == 2
    await SessionStore.aclear_expired()
    assert [d["_id"] for d in sessions_collection.find()] == [live.session_key]


@requires_async_api
async def test_async_methods_are_native_not_thread_wrappers(
    sessions_collection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the sync method was called from the async one")

    for name in ("load", "save", "create", "exists", "delete"):
        monkeypatch.setattr(SessionStore, name, forbidden)
    monkeypatch.setattr(SessionStore, "clear_expired", classmethod(forbidden))
    monkeypatch.setattr(connection, "get_collection", forbidden)
    session = SessionStore()
    await session.aset("a", 1)
    await session.asave()
    assert await SessionStore(session.session_key).aload() == {"a": 1}
    assert await session.aexists(session.session_key)
    await SessionStore.aclear_expired()
    await session.adelete()
    assert isinstance(await connection.aget_collection(), AsyncCollection)
