"""Sessions per user: listing them and logging a user out everywhere."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from django.contrib.auth.models import User

import mongo_sessions
from mongo_sessions import connection
from mongo_sessions.session import SessionStore
from tests.support import requires_async_api

pytestmark = pytest.mark.django_db


def logged_in_session(user: Any, **data: Any) -> SessionStore:
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session.update(data)
    session.save()
    return session


@pytest.fixture
def alice() -> Any:
    return User.objects.create_user("alice", password="pw")


@pytest.fixture
def bob() -> Any:
    return User.objects.create_user("bob", password="pw")


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


def test_user_sessions_skips_expired(alice: Any, sessions_collection: Any) -> None:
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
    current = SessionStore()
    await current.aset("_auth_user_id", "7")
    await current.asave()
    other = SessionStore()
    await other.aset("_auth_user_id", "7")
    await other.asave()
    listed = await mongo_sessions.auser_sessions(user)
    assert len(listed) == 2
    assert await mongo_sessions.arevoke_user_sessions(user, keep=current.session_key) == 1
    assert [s.key_hash for s in await mongo_sessions.auser_sessions(user)] == [
        mongo_sessions.hash_session_key(current.session_key)
    ]
