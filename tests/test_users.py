"""Sessions per user: listing them and logging a user out everywhere, in each format."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from bson import DatetimeMS
from bson.codec_options import DatetimeConversion
from django.contrib.auth.models import User
from django.utils import timezone as django_timezone

import mongo_sessions
from mongo_sessions import connection, users
from mongo_sessions.session import SessionStore
from tests.logins import alogged_in_session, logged_in_session
from tests.support import requires_async_api

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True, params=["signed", "document"])
def session_format(request: pytest.FixtureRequest, settings: Any) -> str:
    """The per-user functions work the same whichever format the sessions are in."""
    settings.MONGO_SESSIONS_FORMAT = request.param
    return str(request.param)


def test_user_sessions_lists_dates_and_hashes_never_keys(alice: Any, bob: Any) -> None:
    mine = [logged_in_session(alice) for _ in range(3)]
    logged_in_session(bob)
    SessionStore().create()  # anonymous
    listed = mongo_sessions.user_sessions(alice)
    assert len(listed) == 3
    assert {s.key_hash for s in listed} == {
        mongo_sessions.hash_session_key(s.session_key) for s in mine
    }
    for entry in listed:
        assert isinstance(entry.created_at, datetime)
        assert entry.expire_date > datetime.now(timezone.utc)
        assert all(s.session_key not in repr(entry) for s in mine)
    assert [s.created_at for s in listed] == sorted((s.created_at for s in listed), reverse=True)


def test_user_sessions_skips_expired(alice: Any, sessions_collection: Any, settings: Any) -> None:
    # No TTL index, so that the expired document is still there to be skipped.
    settings.MONGO_SESSIONS_AUTO_INDEX = False
    live = logged_in_session(alice)
    dead = logged_in_session(alice)
    sessions_collection.update_one(
        {"_id": dead.session_key},
        {"$set": {"expire_date": datetime.now(timezone.utc) - timedelta(seconds=1)}},
    )
    listed = mongo_sessions.user_sessions(alice)
    assert [s.key_hash for s in listed] == [mongo_sessions.hash_session_key(live.session_key)]


def test_revoke_user_sessions_keeps_the_current_one(alice: Any, bob: Any) -> None:
    current = logged_in_session(alice)
    others = [logged_in_session(alice) for _ in range(2)]
    bobs = logged_in_session(bob)
    assert mongo_sessions.revoke_user_sessions(alice, keep=current.session_key) == 2
    assert SessionStore().exists(current.session_key)
    assert not any(SessionStore().exists(s.session_key) for s in others)
    assert SessionStore().exists(bobs.session_key)
    # keep may also be the session object itself.
    assert mongo_sessions.revoke_user_sessions(alice, keep=current) == 0
    assert mongo_sessions.revoke_user_sessions(alice) == 1
    assert not SessionStore().exists(current.session_key)


def test_revoked_session_cannot_be_saved_back(alice: Any, sessions_collection: Any) -> None:
    from django.contrib.sessions.backends.base import UpdateError

    elsewhere = logged_in_session(alice, cart=["apple"])
    mongo_sessions.revoke_user_sessions(alice)
    elsewhere["cart"] = ["apple", "bread"]
    with pytest.raises(UpdateError):
        elsewhere.save()
    assert sessions_collection.count_documents({}) == 0


def test_per_user_queries_use_the_user_index(alice: Any, sessions_collection: Any) -> None:
    logged_in_session(alice)
    assert connection.wait_for_auto_index(30)  # built in the background
    plan = sessions_collection.find({"user_id": str(alice.pk)}).explain()["queryPlanner"]
    assert "user_id_1" in str(plan["winningPlan"])


@requires_async_api
async def test_async_twins(sessions_collection: Any) -> None:
    user = User(pk=7, username="carol")  # unsaved: the lookup needs only its pk
    current = await alogged_in_session(user)
    await alogged_in_session(user)
    listed = await mongo_sessions.auser_sessions(user)
    assert len(listed) == 2
    assert await mongo_sessions.arevoke_user_sessions(user, keep=current.session_key) == 1
    assert [s.key_hash for s in await mongo_sessions.auser_sessions(user)] == [
        mongo_sessions.hash_session_key(current.session_key)
    ]


def insert_malformed(collection: Any, user: Any) -> dict[str, str]:
    """Documents of ``user`` that another program (or a person) may have written."""
    user_id = str(user.pk)
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    keys = {
        "string created_at": "s" * 32,
        "no created_at": "n" * 32,
        "odd device fields": "d" * 32,
    }
    collection.insert_many(
        [
            {"_id": keys["odd device fields"], "user_id": user_id, "expire_date": later,
             "user_agent": 42, "client_address": ["10.0.0.0"], "last_activity": "yesterday"},
            {"_id": keys["string created_at"], "user_id": user_id, "expire_date": later,
             "created_at": "2024-01-01"},
            {"_id": keys["no created_at"], "user_id": user_id, "expire_date": later},
            {"_id": 12345, "user_id": user_id, "expire_date": later},
            {"_id": "NOT A KEY $", "user_id": user_id, "expire_date": later},
            {"_id": "e" * 32, "user_id": user_id, "expire_date": "tomorrow"},
            {"_id": "m" * 32, "user_id": user_id},
            {"_id": "l" * 32, "user_id": user_id, "expire_date": [later]},
        ]
    )  # fmt: skip
    return keys


def assert_malformed_listed(listed: list[Any], live: SessionStore, keys: dict[str, str]) -> None:
    by_hash = {entry.key_hash: entry for entry in listed}
    hashes = {mongo_sessions.hash_session_key(k) for k in (live.session_key, *keys.values())}
    assert set(by_hash) == hashes
    assert by_hash[mongo_sessions.hash_session_key(keys["string created_at"])].created_at is None
    odd = by_hash[mongo_sessions.hash_session_key(keys["odd device fields"])]
    assert (odd.user_agent, odd.client_address, odd.last_activity) == (None, None, None)
    assert listed[0].key_hash == mongo_sessions.hash_session_key(live.session_key or "")


def test_malformed_documents_are_skipped_or_listed_without_the_bad_field(
    alice: Any, sessions_collection: Any, caplog: pytest.LogCaptureFixture
) -> None:
    live = logged_in_session(alice)
    keys = insert_malformed(sessions_collection, alice)
    with caplog.at_level(logging.WARNING, logger="mongo_sessions"):
        listed = mongo_sessions.user_sessions(alice)
    assert_malformed_listed(listed, live, keys)
    assert "created_at that is a str" in caplog.text
    assert "_id is not a session key (a int)" in caplog.text
    for key in (*keys.values(), "NOT A KEY $"):
        assert key not in caplog.text
    # Revoking still reaches every document of the user, malformed or not.
    assert mongo_sessions.revoke_user_sessions(alice) == 9


@requires_async_api
async def test_malformed_documents_from_async_code(sessions_collection: Any) -> None:
    user = User(pk=11, username="dave")
    live = await alogged_in_session(user)
    keys = insert_malformed(sessions_collection, user)
    assert_malformed_listed(await mongo_sessions.auser_sessions(user), live, keys)


def test_dates_as_django_gives_them_without_use_tz(
    alice: Any, settings: Any, sessions_collection: Any
) -> None:
    settings.USE_TZ = False
    settings.TIME_ZONE = "Asia/Tokyo"
    session = SessionStore()
    session["_auth_user_id"] = str(alice.pk)
    session.set_expiry(timedelta(hours=2))
    session.save()
    (entry,) = mongo_sessions.user_sessions(alice)
    # Naive, on the clock of timezone.now(), like every datetime Django gives then.
    assert entry.expire_date.tzinfo is None and entry.created_at is not None
    assert entry.created_at.tzinfo is None
    left = entry.expire_date - django_timezone.now()
    assert abs(left.total_seconds() - 7200) < 5
    assert abs((entry.expire_date - session.get_expiry_date()).total_seconds()) < 1


@pytest.mark.no_mongo
def test_dates_beyond_year_9999_are_skipped_or_listed_as_unknown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A real mongod stores any 64-bit date; read with DATETIME_AUTO, one beyond the
    range of datetime arrives as a DatetimeMS (SecantusDB refuses to store such dates,
    so the documents are given here as pymongo hands them over)."""
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    with caplog.at_level(logging.WARNING, logger="mongo_sessions"):
        listed = users._to_user_session(
            {"_id": "z" * 32, "expire_date": later, "created_at": DatetimeMS(2**62)}
        )
        skipped = users._to_user_session({"_id": "f" * 32, "expire_date": DatetimeMS(2**62)})
    assert listed is not None and listed.created_at is None
    assert skipped is None
    assert "expire_date is a DatetimeMS" in caplog.text
    assert users._listing_codec_options().datetime_conversion == DatetimeConversion.DATETIME_AUTO
