"""Hostile and malformed input: session cookies, stored data, and data that cannot be stored.

Through the API (SessionStore, as SessionMiddleware uses it) and through real
HTTP requests to the demo site under gunicorn. A hostile cookie must never
become a query, a stored key, a 500 or a log line: it is no session at all, and
a page that writes to the session gets a fresh key. Stored data that was
tampered with, cut short or written by another serializer loads as an empty
session and is reported to ``django.security.SuspiciousSession``. Data that
cannot be stored raises ``SessionDataError`` at save and leaves the stored
version as it was.
"""

from __future__ import annotations

import base64
import datetime
import logging
import pickle
import re
import secrets
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pymongo
import pytest
from bson import ObjectId
from django.core import signing

from mongo_sessions.exceptions import SessionDataError
from mongo_sessions.session import SessionStore
from mongo_sessions.testing import CommandCounter
from tests.http_client import Client
from tests.servers import DEMO_API, ChildProcess, demo_env, rundemo_process

FRESH_KEY = re.compile(r"[a-z0-9]{32}")
# A key of the valid format that no session has.
ABSENT_KEY = "0123456789abcdefghijklmnopqrstuv"

# name -> cookie value (str) as a client could send it
HOSTILE_COOKIES: dict[str, str] = {
    "empty": "",
    "10,000 characters": "k" * 10_000,
    "non-ASCII": "сессия-ключ-κλειδί-鍵-🔑-0123456789",
    "NUL": "abcdefgh\x00ijklmnopqrstuvwxyz012345",
    "dollar": "$where0123456789abcdefghijklmnop",
    "dot": "abcdefgh.ijklmnopqrstuvwxyz012345",
    "query operator": '{"$gt": ""}',
    "query operator, URL-encoded": "%7B%22%24gt%22%3A%20%22%22%7D",
    "too short": "abc1234",
    "upper case": "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345",
    "valid format, absent": ABSENT_KEY,
}
# Cookie values a Python caller could hand to SessionStore, beyond strings.
HOSTILE_OBJECTS: dict[str, Any] = {
    "operator object": {"$gt": ""},
    "regex object": {"$regex": ".*"},
    "list": ["a" * 32],
    "bytes": b"0123456789abcdefghijklmnopqrstuv",
    "int": 12345678901234567890,
}
# gunicorn refuses these before Django sees them: a header field over its
# limit_request_field_size (8190 bytes) gets 431 (400 in older versions), a NUL 400.
REFUSED_BY_GUNICORN = {"10,000 characters": {400, 431}, "NUL": {400}}
DISTINCTIVE = ("k" * 10_000, "сессия-ключ", "$where0123456789", '{"$gt": ""}', "ABCDEFGHIJKLMNOP")


@pytest.fixture
def counter(command_counter: CommandCounter) -> CommandCounter:
    return command_counter


@pytest.fixture(params=["signed", "document"])
def each_format(request: pytest.FixtureRequest, settings: Any) -> str:
    """The test runs with each MONGO_SESSIONS_FORMAT."""
    settings.MONGO_SESSIONS_FORMAT = request.param
    return str(request.param)


@pytest.fixture
def security_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    for name in ("mongo_sessions", "django"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def victim() -> SessionStore:
    """A real session that a query-shaped key would match if it reached MongoDB."""
    store = SessionStore()
    store.update({"_auth_user_id": "1", "secret": "victim's data"})
    store.save()
    return store


# --- hostile cookies through the API --------------------------------------------


@pytest.mark.parametrize(
    "value", [*HOSTILE_COOKIES.values(), *HOSTILE_OBJECTS.values()],
    ids=[*HOSTILE_COOKIES, *HOSTILE_OBJECTS],
)  # fmt: skip
def test_hostile_key_is_no_session_and_never_reaches_mongodb(
    value: Any,
    each_format: str,
    counter: CommandCounter,
    sessions_collection: Any,
    security_logs: pytest.LogCaptureFixture,
) -> None:
    target = victim()
    counter.reset()

    store = SessionStore(value)
    assert store.load() == {}
    assert store.exists(value) is False
    store.delete(value)
    if value == ABSENT_KEY:
        # A well-formed key is looked up (by equality on _id) and not found.
        assert counter.commands == ["find", "find", "delete"]
    else:
        assert counter.commands == [], "an invalid key was sent to MongoDB"
    assert SessionStore(target.session_key).load()["secret"] == "victim's data"

    # A page writing to the session gets a fresh key, never the one it was given.
    store["visits"] = 1
    store.save()
    assert store.session_key != value
    assert FRESH_KEY.fullmatch(store.session_key or "")
    keys = [doc["_id"] for doc in sessions_collection.find({}, {"_id": True})]
    assert len(keys) == 2 and set(keys) == {target.session_key, store.session_key}
    if isinstance(value, str):
        for text in DISTINCTIVE:
            if text in value:
                assert text not in security_logs.text


def test_operator_shaped_key_does_not_match_any_document(
    each_format: str, sessions_collection: Any
) -> None:
    """Were the dict used as the _id filter it would match every session (and delete them)."""
    target = victim()
    assert sessions_collection.count_documents({"_id": {"$gt": ""}}) == 1  # the danger
    SessionStore().delete({"$gt": ""})  # type: ignore[arg-type]
    assert SessionStore().exists({"$gt": ""}) is False  # type: ignore[arg-type]
    assert SessionStore(target.session_key).load()["secret"] == "victim's data"


# --- stored data tampered with, truncated, or from another serializer ---------------


def _signed(value: Any) -> str:
    store = SessionStore()
    return signing.dumps(value, salt=store.key_salt, serializer=store.serializer, compress=True)


def _tampered(data: str) -> str:
    # Change one character of the payload: the signature no longer matches.
    i = 5
    return data[:i] + ("A" if data[i] != "A" else "B") + data[i + 1 :]


def _legacy_pickle() -> str:
    # Django < 3.1 stored base64("<hash>:<pickle>"); loading pickle would run code.
    payload = pickle.dumps({"_auth_user_id": "1", "_auth_user_backend": "x"})
    return base64.b64encode(b"0123456789abcdef0123456789abcdef01234567:" + payload).decode()


TAMPERED_DATA: dict[str, Any] = {
    "signature mismatch": lambda good: _tampered(good),
    "truncated": lambda good: good[: len(good) // 2],
    "empty string": lambda good: "",
    "pickle base64 (another serializer)": lambda good: _legacy_pickle(),
    "signed but not a mapping": lambda good: _signed(["not", "a", "dict"]),
    "not a string": lambda good: 12345,
    "an operator document": lambda good: {"$gt": ""},
    # What the document format never writes: another program's (or a person's).
    "a sub-document with an operator inside": lambda good: {"cart": {"$ne": 1}},
    "a sub-document holding a date": lambda good: {
        "_auth_user_id": "1",
        "when": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
    },
    "a sub-document holding an ObjectId": lambda good: {"_auth_user_id": ObjectId()},
    "a list": lambda good: ["_auth_user_id", "1"],
    "missing": None,
}


@pytest.mark.parametrize("kind", list(TAMPERED_DATA))
def test_tampered_stored_data_loads_empty_and_is_reported(
    kind: str,
    each_format: str,
    sessions_collection: Any,
    security_logs: pytest.LogCaptureFixture,
) -> None:
    store = SessionStore()
    store.update({"_auth_user_id": "1", "cart": {"apple": 2}})
    store.save()
    key = store.session_key
    assert key is not None
    # Loads read both formats whatever the one written: tampering with either fails.
    good = _signed({"_auth_user_id": "1", "cart": {"apple": 2}})
    make = TAMPERED_DATA[kind]
    if make is None:
        sessions_collection.update_one({"_id": key}, {"$unset": {"data": ""}})
    else:
        sessions_collection.update_one({"_id": key}, {"$set": {"data": make(good)}})

    loaded = SessionStore(key)
    assert loaded.load() == {}, "tampered data must not log anybody in"
    suspicious = [r for r in security_logs.records if r.name == "django.security.SuspiciousSession"]
    assert suspicious, "nothing reported to django.security.SuspiciousSession"
    assert all(r.levelno == logging.WARNING for r in suspicious)
    assert key not in security_logs.text


# --- data that cannot be stored ---------------------------------------------------


UNENCODABLE: dict[str, Any] = {
    "datetime": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
    "Decimal": Decimal("1.10"),
    "set": {1, 2},
    "bytes": b"\x00\x01",
    "object": object(),
}


@pytest.mark.parametrize("kind", list(UNENCODABLE))
def test_unencodable_value_raises_at_save_and_keeps_the_stored_version(
    kind: str, each_format: str, sessions_collection: Any
) -> None:
    store = SessionStore()
    store["cart"] = {"apple": 1}
    store.save()
    key = store.session_key

    store["bad"] = UNENCODABLE[kind]
    with pytest.raises(SessionDataError) as raised:
        store.save()
    assert raised.value.operation == "save"
    assert "cannot be serialized" in str(raised.value)
    assert SessionStore(key).load() == {"cart": {"apple": 1}}

    fresh = SessionStore()
    fresh["bad"] = UNENCODABLE[kind]
    with pytest.raises(SessionDataError):
        fresh.save()
    assert sessions_collection.count_documents({}) == 1


def test_session_over_16_mb_raises_at_save_and_keeps_the_stored_version(
    each_format: str, sessions_collection: Any
) -> None:
    store = SessionStore()
    store["cart"] = {"coffee": 1}
    store.save()
    key = store.session_key

    # Random text: the signer's zlib compression cannot bring it under 16 MB.
    store["blob"] = secrets.token_urlsafe(14_000_000)
    with pytest.raises(SessionDataError) as raised:
        store.save()
    assert "16 MB" in str(raised.value)
    assert raised.value.operation == "save"
    assert SessionStore(key).load() == {"cart": {"coffee": 1}}
    assert sessions_collection.count_documents({}) == 1


# --- the same cookies over HTTP, against the demo under gunicorn --------------------


@pytest.fixture(scope="module")
def demo(
    mongo_url: str,
    mongo_client: pymongo.MongoClient[dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ChildProcess, Any]]:
    database = f"hostile_{uuid.uuid4().hex[:8]}"
    data_dir: Path = tmp_path_factory.mktemp("hostile-demo")
    env = demo_env(
        MONGO_SESSIONS_URL=mongo_url.rstrip("/") + f"/{database}", MONGO_SESSIONS_TIMEOUT="2"
    )
    site = rundemo_process(env, data_dir, data_dir / "rundemo.log", access_log=True).start()
    try:
        yield site, mongo_client[database]["mongo_sessions"]
    finally:
        site.stop()
        mongo_client.drop_database(database)


def _cookie_header(value: str) -> bytes:
    return b"sessionid=" + value.encode("utf-8")


@pytest.mark.slow
def test_hostile_cookies_over_http(demo: tuple[ChildProcess, Any]) -> None:
    site, collection = demo
    results: dict[str, str] = {}
    fresh_keys = set()
    for name, value in HOSTILE_COOKIES.items():
        client = Client(site.url)
        response = client.get(f"{DEMO_API}/counter/", cookie_header=_cookie_header(value))
        if name in REFUSED_BY_GUNICORN:
            assert response.status in REFUSED_BY_GUNICORN[name], f"{name}: {response.status}"
            assert response.cookie("sessionid") is None
            results[name] = f"{response.status} from gunicorn, before Django"
        else:
            assert response.status == 200, f"{name}: {response.status}"
            new_key = response.cookie("sessionid")
            assert response.json() == {"visits": 1}, name
            assert new_key is not None and FRESH_KEY.fullmatch(new_key), name
            assert new_key != value
            fresh_keys.add(new_key)
            results[name] = "200, visits 1, fresh 32-char key"
    print("\nhostile session cookies over HTTP (/counter/):")
    for name, outcome in results.items():
        print(f"  {name:32} -> {outcome}")

    stored = {doc["_id"] for doc in collection.find({}, {"_id": True})}
    assert len(fresh_keys) == len(HOSTILE_COOKIES) - len(REFUSED_BY_GUNICORN)
    assert fresh_keys <= stored
    assert all(FRESH_KEY.fullmatch(key) for key in stored)
    assert not stored & set(HOSTILE_COOKIES.values())
    log = site.log_text()
    assert "Traceback" not in log
    for text in DISTINCTIVE:
        assert text not in log


@pytest.mark.slow
def test_tampered_session_over_http_is_an_empty_session(demo: tuple[ChildProcess, Any]) -> None:
    site, collection = demo
    client = Client(site.url)
    assert client.get(f"{DEMO_API}/counter/").json() == {"visits": 1}
    assert client.get(f"{DEMO_API}/counter/").json() == {"visits": 2}
    key = client.cookies["sessionid"]
    good = collection.find_one({"_id": key})["data"]
    collection.update_one({"_id": key}, {"$set": {"data": good[: len(good) // 2]}})

    response = client.get(f"{DEMO_API}/counter/")
    assert response.status == 200
    assert response.json() == {"visits": 1}
    log = site.log_text()
    assert "Session data" in log  # the SuspiciousSession warning
    assert key not in log
