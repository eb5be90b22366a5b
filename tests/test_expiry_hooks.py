"""Django's overridable hooks decide the stored expiry, as they do for Django's engines;
MONGO_SESSIONS_TTL keeps its documented meaning (the server-side lifetime of a session
without an explicit expiry, in place of SESSION_COOKIE_AGE)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.backends.db import SessionStore as DbSessionStore
from django.contrib.sessions.middleware import SessionMiddleware
from django.contrib.sessions.models import Session
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from django.utils import timezone as django_timezone

from mongo_sessions.session import SessionStore
from tests.support import requires_async_api

pytestmark = pytest.mark.django_db

TOLERANCE = 2.0
STAFF_AGE = 900  # 15 minutes for staff, SESSION_COOKIE_AGE for everyone else
COOKIE_AGE = 1209600  # Django's default SESSION_COOKIE_AGE


class StaffCookieAge:
    """get_session_cookie_age(): the documented hook for a per-session cookie age."""

    def get_session_cookie_age(self) -> int:
        if self.get("is_staff"):  # type: ignore[attr-defined]
            return STAFF_AGE
        return super().get_session_cookie_age()  # type: ignore[misc,no-any-return]


class MongoStaffStore(StaffCookieAge, SessionStore):
    pass


class DbStaffStore(StaffCookieAge, DbSessionStore):
    pass


class MongoShortAgeStore(SessionStore):
    """get_expiry_age(): what SessionMiddleware puts in the cookie (and the cache engine stores)."""

    def get_expiry_age(self, **kwargs: Any) -> int:
        return 600


class ExpiryDateHook:
    """get_expiry_date(): what Django's database engine stores."""

    def get_expiry_date(self, **kwargs: Any) -> datetime:
        return django_timezone.now() + timedelta(seconds=300)


class MongoDateStore(ExpiryDateHook, SessionStore):
    pass


class DbDateStore(ExpiryDateHook, DbSessionStore):
    pass


def mongo_seconds_left(collection: Any, store: SessionBase) -> float:
    expire_date = collection.find_one({"_id": store.session_key})["expire_date"]
    return (expire_date - datetime.now(timezone.utc)).total_seconds()


def db_seconds_left(store: SessionBase) -> float:
    expire_date = Session.objects.get(session_key=store.session_key).expire_date
    return (expire_date - django_timezone.now()).total_seconds()


def saved(engine: type[SessionBase], **data: Any) -> SessionBase:
    store = engine()
    store.update(data)
    store.save()
    return store


def cookie_max_age(engine: type[SessionBase], **data: Any) -> int:
    def view(request: HttpRequest) -> HttpResponse:
        request.session.update(data)
        return HttpResponse("ok")

    middleware = SessionMiddleware(view)
    middleware.SessionStore = engine  # type: ignore[misc]
    response = middleware(RequestFactory().get("/"))
    return int(response.cookies["sessionid"]["max-age"])


@pytest.mark.parametrize(
    ("mongo_engine", "db_engine", "data", "expected"),
    [
        (MongoStaffStore, DbStaffStore, {"is_staff": True}, STAFF_AGE),
        (MongoStaffStore, DbStaffStore, {"is_staff": False}, COOKIE_AGE),
        (MongoDateStore, DbDateStore, {}, 300),
    ],
    ids=["get_session_cookie_age staff", "get_session_cookie_age other", "get_expiry_date"],
)
def test_hooks_decide_as_for_the_database_engine(
    sessions_collection: Any,
    mongo_engine: type[SessionBase],
    db_engine: type[SessionBase],
    data: dict[str, Any],
    expected: int,
) -> None:
    mongo = saved(mongo_engine, **data)
    db = saved(db_engine, **data)
    assert abs(db_seconds_left(db) - expected) < TOLERANCE
    assert abs(mongo_seconds_left(sessions_collection, mongo) - expected) < TOLERANCE


def test_a_stolen_staff_cookie_dies_with_the_cookie(sessions_collection: Any) -> None:
    """The issue's case: 15 minutes for staff on the cookie must mean 15 on the server."""
    assert cookie_max_age(MongoStaffStore, is_staff=True) == STAFF_AGE
    session_key = sessions_collection.find_one({})["_id"]
    store = MongoStaffStore(session_key)
    assert abs(mongo_seconds_left(sessions_collection, store) - STAFF_AGE) < TOLERANCE


def test_get_expiry_age_decides_the_cookie_and_the_server(sessions_collection: Any) -> None:
    assert cookie_max_age(MongoShortAgeStore, visits=1) == 600
    store = saved(MongoShortAgeStore, visits=1)
    assert abs(mongo_seconds_left(sessions_collection, store) - 600) < TOLERANCE


def test_mongo_sessions_ttl_is_the_server_lifetime_without_explicit_expiry(
    settings: Any, sessions_collection: Any
) -> None:
    settings.MONGO_SESSIONS_TTL = 3600
    plain = saved(SessionStore, visits=1)
    assert abs(mongo_seconds_left(sessions_collection, plain) - 3600) < TOLERANCE
    browser_close = SessionStore()
    browser_close.set_expiry(0)
    browser_close.save()
    assert abs(mongo_seconds_left(sessions_collection, browser_close) - 3600) < TOLERANCE
    # It replaces SESSION_COOKIE_AGE, so a hook that defers to it (super()) gets it too...
    other = saved(MongoStaffStore, is_staff=False)
    assert abs(mongo_seconds_left(sessions_collection, other) - 3600) < TOLERANCE
    # ...while a hook's own value for a session still decides, and so does set_expiry().
    staff = saved(MongoStaffStore, is_staff=True)
    assert abs(mongo_seconds_left(sessions_collection, staff) - STAFF_AGE) < TOLERANCE
    explicit = SessionStore()
    explicit.set_expiry(60)
    explicit.save()
    assert abs(mongo_seconds_left(sessions_collection, explicit) - 60) < TOLERANCE
    # The cookie keeps SESSION_COOKIE_AGE: the documented meaning of the setting.
    assert cookie_max_age(SessionStore, visits=1) == COOKIE_AGE


@requires_async_api
async def test_hooks_decide_from_async_code(sessions_collection: Any) -> None:
    staff = MongoStaffStore()
    await staff.aset("is_staff", True)
    await staff.asave()
    assert abs(mongo_seconds_left(sessions_collection, staff) - STAFF_AGE) < TOLERANCE
    dated = MongoDateStore()
    await dated.aset("visits", 1)
    await dated.asave()
    assert abs(mongo_seconds_left(sessions_collection, dated) - 300) < TOLERANCE
    aged = MongoShortAgeStore()
    await aged.aset("visits", 1)
    await aged.asave()
    assert abs(mongo_seconds_left(sessions_collection, aged) - 600) < TOLERANCE
