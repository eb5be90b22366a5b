"""Per-session expiry: expire_date, the TTL index, MONGO_SESSIONS_TTL and the TTL monitor."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from django.test import override_settings

from mongo_sessions import connection
from mongo_sessions.session import SessionStore

TOLERANCE = timedelta(seconds=5)
# SecantusDB in the tests sweeps every second; a real mongod every 60 s.
TTL_MONITOR_WAIT = float(os.environ.get("MONGO_SESSIONS_TTL_MONITOR_WAIT", "90"))


def now() -> datetime:
    return datetime.now(timezone.utc)


def expire_date_of(collection: Any, session: SessionStore) -> datetime:
    return collection.find_one({"_id": session.session_key})["expire_date"]


def assert_close(actual: datetime, expected: datetime) -> None:
    assert abs(actual - expected) < TOLERANCE, (actual, expected)


@pytest.mark.parametrize(
    ("expiry", "expected_delta"),
    [
        (300, timedelta(seconds=300)),
        (timedelta(hours=2), timedelta(hours=2)),
        (None, timedelta(seconds=1209600)),  # SESSION_COOKIE_AGE
        (0, timedelta(seconds=1209600)),  # browser-close: server keeps it for the TTL
    ],
)
def test_set_expiry_forms(sessions_collection: Any, expiry: Any, expected_delta: timedelta) -> None:
    session = SessionStore()
    session.set_expiry(expiry)
    session["a"] = 1
    session.save()
    assert_close(expire_date_of(sessions_collection, session), now() + expected_delta)
    loaded = SessionStore(session.session_key)
    assert loaded["a"] == 1
    assert loaded.get_expire_at_browser_close() is (expiry == 0)


def test_set_expiry_with_aware_datetime(sessions_collection: Any) -> None:
    when = now() + timedelta(days=3)
    session = SessionStore()
    session.set_expiry(when)
    session.save()
    assert_close(expire_date_of(sessions_collection, session), when)


@override_settings(USE_TZ=False, TIME_ZONE="America/New_York")
def test_set_expiry_with_naive_local_datetime(sessions_collection: Any) -> None:
    local_when = datetime.now() + timedelta(days=1)  # naive, in TIME_ZONE
    session = SessionStore()
    session.set_expiry(local_when)
    session.save()
    # Stored as the absolute UTC instant, whatever the site's time zone.
    assert_close(expire_date_of(sessions_collection, session), now() + timedelta(days=1))


def test_mongo_sessions_ttl_sets_the_server_side_lifetime(
    sessions_collection: Any, settings: Any
) -> None:
    settings.MONGO_SESSIONS_TTL = 3600
    session = SessionStore()
    session.save()
    assert_close(expire_date_of(sessions_collection, session), now() + timedelta(hours=1))
    # The cookie keeps SESSION_COOKIE_AGE; only the document's lifetime changed.
    assert session.get_expiry_age() == settings.SESSION_COOKIE_AGE
    explicit = SessionStore()
    explicit.set_expiry(60)
    explicit.save()
    assert_close(expire_date_of(sessions_collection, explicit), now() + timedelta(seconds=60))


def ttl_indexes(collection: Any) -> dict[str, Any]:
    return {
        name: spec
        for name, spec in collection.index_information().items()
        if "expireAfterSeconds" in spec
    }


def test_ttl_index_is_created_with_zero_seconds(sessions_collection: Any) -> None:
    SessionStore().create()
    assert connection.wait_for_auto_index(30)  # built in the background
    indexes = ttl_indexes(sessions_collection)
    assert list(indexes) == ["expire_date_1"]
    assert indexes["expire_date_1"]["expireAfterSeconds"] == 0
    assert indexes["expire_date_1"]["key"] == [("expire_date", 1)]


def test_changing_mongo_sessions_ttl_keeps_the_ttl_index(
    sessions_collection: Any, settings: Any
) -> None:
    SessionStore().create()
    assert connection.wait_for_auto_index(30)  # built in the background
    for ttl in (60, 7200, 30):
        settings.MONGO_SESSIONS_TTL = ttl
        session = SessionStore()
        session.create()
        assert_close(expire_date_of(sessions_collection, session), now() + timedelta(seconds=ttl))
        assert ttl_indexes(sessions_collection)["expire_date_1"]["expireAfterSeconds"] == 0


def test_expired_but_not_yet_removed_is_ignored(sessions_collection: Any, settings: Any) -> None:
    # With the TTL index absent, nothing removes the document: reads must still ignore it.
    settings.MONGO_SESSIONS_AUTO_INDEX = False
    session = SessionStore()
    session["a"] = 1
    session.save()
    sessions_collection.update_one(
        {"_id": session.session_key}, {"$set": {"expire_date": now() - timedelta(seconds=1)}}
    )
    assert sessions_collection.count_documents({}) == 1
    loaded = SessionStore(session.session_key)
    assert loaded.load() == {}
    assert loaded.session_key is None
    assert not SessionStore().exists(session.session_key)


def test_ttl_monitor_removes_expired_sessions(sessions_collection: Any) -> None:
    expiring = SessionStore()
    expiring.set_expiry(1)
    expiring.save()
    staying = SessionStore()
    staying.create()
    # The TTL index is built by a background thread (see connection.py): have it
    # built now, so that what is waited for below is MongoDB's monitor alone.
    assert connection.wait_for_auto_index(30)
    deadline = time.monotonic() + TTL_MONITOR_WAIT
    while time.monotonic() < deadline:
        if sessions_collection.find_one({"_id": expiring.session_key}) is None:
            break
        time.sleep(0.5)
    assert sessions_collection.find_one({"_id": expiring.session_key}) is None
    assert sessions_collection.find_one({"_id": staying.session_key}) is not None
