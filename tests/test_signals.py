"""session_created, session_ended and user_sessions_revoked: once per event, never a key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.dispatch import Signal
from django.test import Client

import mongo_sessions
from mongo_sessions.session import SessionStore
from mongo_sessions.signals import session_created, session_ended, user_sessions_revoked
from tests.logins import alogged_in_session, logged_in_session
from tests.support import requires_async_api

pytestmark = pytest.mark.django_db


class Received:
    """What each of the package's signals delivered, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def receiver(self, name: str) -> Any:
        def receive(signal: Signal, **kwargs: Any) -> None:
            self.events.append((name, kwargs))

        return receive

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    def ended(self) -> list[tuple[str, str | None]]:
        return [(kw["reason"], kw["key_hash"]) for name, kw in self.events if name == "ended"]


@pytest.fixture
def received() -> Iterator[Received]:
    received = Received()
    receivers = {
        session_created: received.receiver("created"),
        session_ended: received.receiver("ended"),
        user_sessions_revoked: received.receiver("revoked"),
    }
    for signal, receiver in receivers.items():
        signal.connect(receiver, weak=False)
    yield received
    for signal, receiver in receivers.items():
        signal.disconnect(receiver)


def h(key: str | None) -> str:
    assert key is not None
    return mongo_sessions.hash_session_key(key)


def saved_session(received: Received) -> SessionStore:
    """Save a session with data in it; forget the signal that sent."""
    session = SessionStore()
    session["a"] = 1
    session.save()
    received.events.clear()
    return session


def test_first_save_sends_session_created_once(received: Received) -> None:
    session = SessionStore()
    session["a"] = 1
    session.save()
    session["a"] = 2
    session.save()  # an update: no new session
    assert received.names() == ["created"]
    kwargs = received.events[0][1]
    assert kwargs["sender"] is SessionStore
    assert kwargs["session"] is session
    assert kwargs["key_hash"] == h(session.session_key)


def test_key_change_sends_created_then_ended_once(received: Received) -> None:
    session = saved_session(received)
    old = session.session_key
    session.cycle_key()
    # The old document goes when the key change completes: at the save that
    # follows (a login's), never before the session is stored under its new key.
    assert received.names() == ["created"]
    assert received.events[0][1]["key_hash"] == h(session.session_key)
    session.save()
    assert received.names() == ["created", "ended"]
    assert received.ended() == [("key change", h(old))]


def test_flush_sends_session_ended_logout_once(received: Received) -> None:
    session = saved_session(received)
    key = session.session_key
    session.flush()
    session.delete(key)  # already gone: no second event
    assert received.ended() == [("logout", h(key))]


def test_login_and_logout_through_django_auth(
    settings: Any, received: Received, alice: Any
) -> None:
    settings.ROOT_URLCONF = "tests.urls_devices"
    client = Client()
    client.post("/login/", {"username": "alice", "password": "pw"})
    key = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    assert received.names() == ["created"]  # no session before: nothing ends
    client.post("/logout/")
    assert received.names() == ["created", "ended"]
    assert received.ended() == [("logout", h(key))]


def test_revoke_session_and_revoke_user_sessions(received: Received, alice: Any) -> None:
    sessions = [logged_in_session(alice) for _ in range(4)]
    received.events.clear()
    assert mongo_sessions.revoke_session(alice, h(sessions[0].session_key))
    assert mongo_sessions.revoke_session(alice, h(sessions[0].session_key)) is False
    assert received.ended() == [("revoke", h(sessions[0].session_key))]
    assert received.events[0][1]["user_id"] == str(alice.pk)
    received.events.clear()
    assert mongo_sessions.revoke_user_sessions(alice, keep=sessions[1]) == 2
    assert received.names() == ["revoked"]
    kwargs = received.events[0][1]
    assert kwargs["user"] == alice
    assert kwargs["count"] == 2
    assert kwargs["kept_key_hash"] == h(sessions[1].session_key)


def test_no_signal_carries_a_session_key(received: Received, alice: Any) -> None:
    session = logged_in_session(alice)
    keys = [session.session_key]
    session.cycle_key()
    keys.append(session.session_key)
    mongo_sessions.revoke_user_sessions(alice)
    for _, kwargs in received.events:
        shown = repr({k: v for k, v in kwargs.items() if k not in ("session", "signal")})
        assert not any(key in shown for key in keys if key)


@requires_async_api
async def test_async_twins_send_once(received: Received) -> None:
    user = User(pk=9, username="carol")
    session = await alogged_in_session(user)
    first = session.session_key
    await session.acycle_key()
    second = session.session_key
    await session.aflush()
    assert received.names() == ["created", "created", "ended", "ended"]
    # The flush comes before any save: it deletes the authenticated session first,
    # then the one its key change replaced (so a failure leaves no logged-in one).
    assert received.ended() == [("logout", h(second)), ("key change", h(first))]
    others = [await alogged_in_session(user) for _ in range(3)]
    received.events.clear()
    assert await mongo_sessions.arevoke_session(user, h(others[0].session_key))
    assert await mongo_sessions.arevoke_user_sessions(user, keep=others[1].session_key) == 1
    assert received.names() == ["ended", "revoked"]
    assert received.ended() == [("revoke", h(others[0].session_key))]
    assert received.events[1][1]["count"] == 1


@requires_async_api
async def test_async_receivers_are_awaited(received: Received) -> None:
    seen: list[str] = []

    async def async_receiver(signal: Signal, **kwargs: Any) -> None:
        seen.append(kwargs["key_hash"])

    session_created.connect(async_receiver, weak=False)
    try:
        session = SessionStore()
        await session.aset("a", 1)
        await session.asave()
    finally:
        session_created.disconnect(async_receiver)
    assert seen == [h(session.session_key)]
