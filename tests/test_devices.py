"""Devices: recorded user agent, address and last activity; revoke_session; the pages."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.test import Client

import mongo_sessions
from mongo_sessions import devices
from mongo_sessions.session import SessionStore
from mongo_sessions.testing import CommandCounter
from tests.logins import alogged_in_session, logged_in_session
from tests.support import requires_async_api

pytestmark = pytest.mark.django_db

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148 Safari/604.1"


@pytest.fixture
def site(settings: Any) -> None:
    """A site with the package's middleware, the pages under account/sessions/ and a login."""
    settings.ROOT_URLCONF = "tests.urls_devices"
    settings.MIDDLEWARE = [
        "mongo_sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ]
    settings.TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "APP_DIRS": True,
            "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
        }
    ]
    settings.LOGIN_URL = "/login/"


@pytest.fixture
def recording(settings: Any, site: None) -> None:
    settings.MONGO_SESSIONS_RECORD_DEVICES = True


def browser(username: str, user_agent: str, address: str, **kwargs: Any) -> Client:
    """A browser signed in through the site's login view."""
    client = Client(HTTP_USER_AGENT=user_agent, REMOTE_ADDR=address, **kwargs)
    assert client.post("/login/", {"username": username, "password": "pw"}).status_code == 200
    return client


def key_of(client: Client) -> str:
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


# --- recording -------------------------------------------------------------


def test_nothing_is_recorded_by_default(site: None, alice: Any, sessions_collection: Any) -> None:
    client = browser("alice", FIREFOX, "203.0.113.77")
    document = sessions_collection.find_one({"_id": key_of(client)})
    assert not set(devices.DEVICE_FIELDS) & set(document)
    (listed,) = mongo_sessions.user_sessions(alice)
    assert (listed.user_agent, listed.client_address, listed.last_activity) == (None, None, None)


def test_user_agent_truncated_address_and_last_activity_are_recorded(
    recording: None, alice: Any, sessions_collection: Any
) -> None:
    before = datetime.now(timezone.utc)
    laptop = browser("alice", FIREFOX, "203.0.113.77")
    phone = browser("alice", PHONE, "2001:db8:85a3:8d3:1319:8a2e:370:7348")
    listed = {s.key_hash: s for s in mongo_sessions.user_sessions(alice)}
    on_laptop = listed[mongo_sessions.hash_session_key(key_of(laptop))]
    on_phone = listed[mongo_sessions.hash_session_key(key_of(phone))]
    assert on_laptop.user_agent == FIREFOX
    assert on_laptop.client_address == "203.0.113.0/24"
    assert on_phone.user_agent == PHONE
    assert on_phone.client_address == "2001:db8:85a3::/48"
    for entry in (on_laptop, on_phone):
        assert entry.last_activity is not None
        assert before - timedelta(seconds=1) <= entry.last_activity <= datetime.now(timezone.utc)
    stored = sessions_collection.find_one({"_id": key_of(laptop)})
    assert "203.0.113.77" not in str(stored)


@pytest.mark.no_mongo
def test_address_modes(settings: Any) -> None:
    settings.SECRET_KEY = "one key"
    hashed = devices.client_address("203.0.113.77", "hash")
    assert hashed is not None and len(hashed) == 16 and "203" not in hashed
    assert devices.client_address("203.0.113.77", "hash") == hashed
    assert devices.client_address("203.0.113.78", "hash") != hashed
    assert devices.client_address("::ffff:203.0.113.77", "hash") == hashed
    settings.SECRET_KEY = "another key"
    assert devices.client_address("203.0.113.77", "hash") != hashed
    assert devices.client_address("::ffff:203.0.113.77", "truncate") == "203.0.113.0/24"
    assert devices.client_address("203.0.113.77", "none") is None
    assert devices.client_address("not an address", "truncate") is None
    assert devices.client_address("", "truncate") is None


def test_hash_mode_is_stored(
    settings: Any, recording: None, alice: Any, sessions_collection: Any
) -> None:
    settings.MONGO_SESSIONS_DEVICE_ADDRESS = "hash"
    client = browser("alice", FIREFOX, "198.51.100.9")
    stored = sessions_collection.find_one({"_id": key_of(client)})
    assert stored["client_address"] == devices.client_address("198.51.100.9", "hash")
    settings.MONGO_SESSIONS_DEVICE_ADDRESS = "none"
    other = browser("alice", FIREFOX, "198.51.100.9")
    assert sessions_collection.find_one({"_id": key_of(other)})["client_address"] is None


def test_a_long_user_agent_is_cut(recording: None, alice: Any, sessions_collection: Any) -> None:
    client = browser("alice", "X" * 10_000, "203.0.113.1")
    stored = sessions_collection.find_one({"_id": key_of(client)})
    assert stored["user_agent"] == "X" * devices.MAX_USER_AGENT_LENGTH


def test_last_activity_follows_the_touch_rule_never_a_write_per_request(
    settings: Any,
    recording: None,
    alice: Any,
    sessions_collection: Any,
    command_counter: CommandCounter,
) -> None:
    settings.MONGO_SESSIONS_TOUCH_AFTER = 300
    client = browser("alice", FIREFOX, "203.0.113.77")
    key = key_of(client)
    first = sessions_collection.find_one({"_id": key})
    command_counter.reset()
    for _ in range(10):
        assert client.get("/read/").content == b"True"
    assert command_counter.writes == []
    assert sessions_collection.find_one({"_id": key})["last_activity"] == first["last_activity"]
    sessions_collection.update_one(
        {"_id": key},
        {"$set": {"expire_date": first["expire_date"] - timedelta(seconds=301)}},
    )
    client.get("/read/")
    assert command_counter.writes == ["update"]
    touched = sessions_collection.find_one({"_id": key})
    assert touched["last_activity"] > first["last_activity"]
    assert touched["data"] == first["data"]


# --- revoke_session ----------------------------------------------------------


def test_revoke_session_ends_the_chosen_session_of_that_user_only(alice: Any, bob: Any) -> None:
    mine = [logged_in_session(alice) for _ in range(3)]
    bobs = logged_in_session(bob)
    chosen = mongo_sessions.hash_session_key(mine[1].session_key)
    assert mongo_sessions.revoke_session(alice, chosen) is True
    assert [SessionStore().exists(s.session_key) for s in mine] == [True, False, True]
    # Bob's session is not Alice's to end, even with its hash.
    assert (
        mongo_sessions.revoke_session(alice, mongo_sessions.hash_session_key(bobs.session_key))
        is False
    )
    assert SessionStore().exists(bobs.session_key)
    assert mongo_sessions.revoke_session(alice, chosen) is False  # already ended
    assert mongo_sessions.revoke_session(alice, "0" * 16) is False


@requires_async_api
async def test_arevoke_session(sessions_collection: Any) -> None:
    alice, bob = User(pk=41, username="a"), User(pk=42, username="b")
    sessions = [await alogged_in_session(user) for user in (alice, alice, bob)]
    hashes = [mongo_sessions.hash_session_key(s.session_key) for s in sessions]
    assert await mongo_sessions.arevoke_session(alice, hashes[2]) is False
    assert await mongo_sessions.arevoke_session(alice, hashes[0]) is True
    assert [await SessionStore().aexists(s.session_key) for s in sessions] == [False, True, True]
    listed = await mongo_sessions.auser_sessions(alice)
    assert [s.key_hash for s in listed] == [hashes[1]]


# --- the pages ---------------------------------------------------------------


def test_pages_require_login(site: None) -> None:
    client = Client()
    for method, path in (("get", ""), ("post", "end/"), ("post", "end-others/")):
        response = getattr(client, method)(f"/account/sessions/{path}")
        assert response.status_code == 302
        assert response["Location"].startswith("/login/?next=/account/sessions/")


def test_list_shows_the_devices_and_marks_this_one(recording: None, alice: Any, bob: Any) -> None:
    laptop = browser("alice", FIREFOX, "203.0.113.77")
    browser("alice", PHONE, "198.51.100.20")
    browser("bob", "Bob's browser", "192.0.2.1")
    page = laptop.get("/account/sessions/")
    assert page.status_code == 200
    assert page["Cache-Control"].startswith("max-age=0")
    html = page.content.decode()
    assert html.count("data-key-hash=") == 2
    assert "Firefox/128.0" in html and "iPhone" in html and "Bob" not in html
    assert "203.0.113.0/24" in html and "198.51.100.0/24" in html
    current = mongo_sessions.hash_session_key(key_of(laptop))
    assert f'class="current" data-key-hash="{current}"' in html
    assert key_of(laptop) not in html


def test_ending_needs_post_and_the_csrf_token(site: None, alice: Any) -> None:
    laptop = browser("alice", FIREFOX, "203.0.113.77", enforce_csrf_checks=True)
    phone = browser("alice", PHONE, "198.51.100.20")
    target = mongo_sessions.hash_session_key(key_of(phone))
    assert laptop.get("/account/sessions/end/").status_code == 405
    assert laptop.post("/account/sessions/end/", {"key_hash": target}).status_code == 403
    assert laptop.post("/account/sessions/end-others/").status_code == 403
    assert SessionStore().exists(key_of(phone))
    page = laptop.get("/account/sessions/")
    token = page.context["csrf_token"]
    response = laptop.post(
        "/account/sessions/end/", {"key_hash": target, "csrfmiddlewaretoken": str(token)}
    )
    assert response.status_code == 302
    assert not SessionStore().exists(key_of(phone))
    assert SessionStore().exists(key_of(laptop))


def test_end_one_and_end_all_others(site: None, alice: Any, bob: Any) -> None:
    laptop = browser("alice", FIREFOX, "203.0.113.77")
    phones = [browser("alice", PHONE, "198.51.100.20") for _ in range(3)]
    bobs = browser("bob", "b", "192.0.2.1")
    response = laptop.post(
        "/account/sessions/end/", {"key_hash": mongo_sessions.hash_session_key(key_of(phones[0]))}
    )
    assert response.status_code == 302 and response["Location"] == "/account/sessions/"
    assert phones[0].get("/read/").content == b"False"  # that device is signed out
    assert phones[1].get("/read/").content == b"True"
    assert laptop.post("/account/sessions/end/", {"key_hash": "short"}).status_code == 400
    assert laptop.post("/account/sessions/end-others/").status_code == 302
    assert [p.get("/read/").content for p in phones] == [b"False"] * 3
    assert laptop.get("/read/").content == b"True"
    assert bobs.get("/read/").content == b"True"
    assert len(mongo_sessions.user_sessions(alice)) == 1


def test_ending_the_current_session_logs_out(site: None, alice: Any) -> None:
    laptop = browser("alice", FIREFOX, "203.0.113.77")
    key = key_of(laptop)
    response = laptop.post(
        "/account/sessions/end/", {"key_hash": mongo_sessions.hash_session_key(key)}
    )
    assert response.status_code == 302
    assert not SessionStore().exists(key)
    assert laptop.get("/read/").content == b"False"
