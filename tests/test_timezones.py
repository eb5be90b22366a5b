"""Time zones: the stored expiry, the cookie and the session's survival agree with Django's
database engine (on the sqlite test database), run side by side in the same test, for
USE_TZ True and False, three TIME_ZONEs, an activated zone that differs from TIME_ZONE,
and every form of set_expiry().
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from email.utils import parsedate_to_datetime
from io import StringIO
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from bson import ObjectId
from django.conf import settings as django_settings
from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.backends.db import SessionStore as DbSessionStore
from django.contrib.sessions.middleware import SessionMiddleware
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from django.utils import timezone

from mongo_sessions.session import SessionStore
from tests.servers import REPO_ROOT
from tests.support import TEST_DB

pytestmark = pytest.mark.django_db

# Seconds two measurements of the same expiry may differ by: the engines run one
# after the other, and Django's cookie age is rounded down to whole seconds.
TOLERANCE = 2.0
TWO_HOURS = timedelta(hours=2)

# TIME_ZONE, and the zone a middleware activates for the user (always another one).
ZONES = [
    ("UTC", "Asia/Tokyo"),
    ("America/New_York", "Asia/Tokyo"),
    ("Asia/Tokyo", "America/New_York"),
]


def naive_in(delta: timedelta) -> datetime:
    """A naive datetime ``delta`` from now, as Django code would write it."""
    now = timezone.now()
    if django_settings.USE_TZ:
        # Naive datetimes mean TIME_ZONE when time zone support is on.
        now = timezone.make_naive(now, timezone.get_default_timezone())
    return now + delta


@pytest.fixture(autouse=True)
def no_ttl_index(settings: Any) -> None:
    """Keep MongoDB's TTL monitor away from these tests' collections.

    Several forms store a session that is already expired, and the tests read its
    document back to compare its expire_date: the test server's monitor (every
    second) could delete it first. Whether a session is alive never depends on
    the TTL index (loads match ``expire_date > now`` only), so no index is built.
    """
    settings.MONGO_SESSIONS_AUTO_INDEX = False


def aware_in(delta: timedelta) -> datetime:
    # +05:45: unlike every zone above, so that no offset can be right by chance.
    return datetime.now(ZoneInfo("Asia/Kathmandu")) + delta


FORMS: dict[str, Callable[[], Any]] = {
    "seconds": lambda: 7200,
    "timedelta": lambda: TWO_HOURS,
    "naive datetime": lambda: naive_in(TWO_HOURS),
    "aware datetime": lambda: aware_in(TWO_HOURS),
    "0 (browser close)": lambda: 0,
    "None": lambda: None,
    "negative seconds": lambda: -60,
    "naive datetime in the past": lambda: naive_in(-timedelta(hours=1)),
}


@dataclass
class Outcome:
    """What one engine did with one form of set_expiry()."""

    error: str | None = None
    warned: bool = False
    session_key: str | None = None
    max_age: int | None = None
    expires: datetime | None = None


def expiry_view(form: Callable[[], Any]) -> Callable[[HttpRequest], HttpResponse]:
    def view(request: HttpRequest) -> HttpResponse:
        request.session["visits"] = 1
        request.session.set_expiry(form())
        return HttpResponse("ok")

    return view


def through_middleware(engine: type[SessionBase], form: Callable[[], Any]) -> Outcome:
    """Run a request whose view calls set_expiry(), through Django's SessionMiddleware."""
    middleware = SessionMiddleware(expiry_view(form))
    middleware.SessionStore = engine  # type: ignore[misc]
    outcome = Outcome()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            response = middleware(RequestFactory().get("/"))
        except Exception as e:
            outcome.error = type(e).__name__
            return outcome
    outcome.warned = any(issubclass(w.category, RuntimeWarning) for w in caught)
    cookie = response.cookies[django_settings.SESSION_COOKIE_NAME]
    outcome.session_key = cookie.value
    if cookie["max-age"] != "":
        outcome.max_age = int(cookie["max-age"])
        outcome.expires = parsedate_to_datetime(cookie["expires"])
    return outcome


def through_the_api(engine: type[SessionBase], form: Callable[[], Any]) -> Outcome:
    """Save a session whose expiry is set with set_expiry(), without the middleware."""
    outcome = Outcome()
    store = engine()
    store["visits"] = 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            store.set_expiry(form())
            store.save()
        except Exception as e:
            outcome.error = type(e).__name__
            return outcome
    outcome.warned = any(issubclass(w.category, RuntimeWarning) for w in caught)
    outcome.session_key = store.session_key
    return outcome


def db_seconds_left(session_key: str) -> float:
    """Seconds left of a session of Django's database engine, by Django's own arithmetic."""
    expire_date = Session.objects.get(session_key=session_key).expire_date
    return (expire_date - timezone.now()).total_seconds()


def mongo_seconds_left(collection: Any, session_key: str) -> float:
    expire_date = collection.find_one({"_id": session_key})["expire_date"]
    return (expire_date - datetime.now(dt_timezone.utc)).total_seconds()


def alive(engine: type[SessionBase], session_key: str) -> bool:
    """Whether the next request with this cookie finds the session."""
    return engine(session_key).get("visits") == 1


def assert_same_storage(collection: Any, db: Outcome, mongo: Outcome) -> float:
    """Assert both engines stored the same expiry; return the seconds left."""
    assert db.session_key and mongo.session_key
    db_left = db_seconds_left(db.session_key)
    mongo_left = mongo_seconds_left(collection, mongo.session_key)
    assert abs(mongo_left - db_left) < TOLERANCE, (mongo_left, db_left)
    assert alive(SessionStore, mongo.session_key) is alive(DbSessionStore, db.session_key)
    assert alive(SessionStore, mongo.session_key) is (mongo_left > 0)
    return mongo_left


@pytest.mark.parametrize("use_tz", [True, False], ids=["USE_TZ", "no USE_TZ"])
@pytest.mark.parametrize(("time_zone", "activated"), ZONES, ids=[z for z, _ in ZONES])
@pytest.mark.parametrize("form_name", list(FORMS))
def test_expiry_agrees_with_the_database_engine(
    settings: Any,
    sessions_collection: Any,
    use_tz: bool,
    time_zone: str,
    activated: str,
    form_name: str,
) -> None:
    settings.USE_TZ = use_tz
    settings.TIME_ZONE = time_zone
    form = FORMS[form_name]
    with timezone.override(activated):
        # Through SessionMiddleware: the same cookie, the same stored expiry.
        db = through_middleware(DbSessionStore, form)
        mongo = through_middleware(SessionStore, form)
        assert mongo.error == db.error
        if db.error is None:
            assert mongo.warned == db.warned
            left = assert_same_storage(sessions_collection, db, mongo)
            if db.max_age is None:
                assert mongo.max_age is None  # browser-close cookie
            else:
                assert mongo.max_age is not None and mongo.expires and db.expires
                assert abs(mongo.max_age - db.max_age) <= TOLERANCE
                assert abs((mongo.expires - db.expires).total_seconds()) <= TOLERANCE
                # The cookie and the server end the session together.
                assert abs(mongo.max_age - left) <= TOLERANCE

        # Through the API: where Django's engine stores the session, so does this one.
        db = through_the_api(DbSessionStore, form)
        mongo = through_the_api(SessionStore, form)
        if db.error is None:
            assert mongo.error is None
            assert mongo.warned == db.warned
            assert_same_storage(sessions_collection, db, mongo)
        else:
            # Only an aware datetime with USE_TZ = False: SQLite (like every Django
            # backend) refuses it; it is an unambiguous instant, and it is stored.
            assert (db.error, form_name, use_tz) == ("ValueError", "aware datetime", False)
            assert mongo.error is None and mongo.session_key
            left = mongo_seconds_left(sessions_collection, mongo.session_key)
            assert abs(left - TWO_HOURS.total_seconds()) < TOLERANCE
            assert alive(SessionStore, mongo.session_key)


@pytest.fixture
def naive_new_york(settings: Any) -> None:
    """The issue's case: USE_TZ = False and TIME_ZONE New York (the tests activate Tokyo)."""
    settings.USE_TZ = False
    settings.TIME_ZONE = "America/New_York"


def test_the_activated_zone_never_shifts_the_expiry(
    naive_new_york: None, sessions_collection: Any
) -> None:
    """The issue's case: USE_TZ False, New York, a user in Tokyo, set_expiry(2 hours)."""
    with timezone.override("Asia/Tokyo"):
        outcome = through_middleware(SessionStore, lambda: TWO_HOURS)
        assert outcome.session_key and outcome.max_age is not None
        left = mongo_seconds_left(sessions_collection, outcome.session_key)
        assert abs(left - TWO_HOURS.total_seconds()) < TOLERANCE
        assert abs(outcome.max_age - left) <= TOLERANCE
        assert alive(SessionStore, outcome.session_key)


CONFIGURED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from datetime import datetime, timedelta, timezone as dt_timezone

    import django
    from django.conf import settings

    settings.configure(
        USE_TZ=False,
        TIME_ZONE=sys.argv[1],
        SECRET_KEY="timezones-subprocess",
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "mongo_sessions",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        SESSION_ENGINE="mongo_sessions.session",
        MONGO_SESSIONS_URL=sys.argv[2],
        MONGO_SESSIONS_COLLECTION=sys.argv[3],
        MONGO_SESSIONS_AUTO_INDEX=False,  # no TTL monitor on sessions born expired
    )
    django.setup()

    from django.contrib.sessions.backends.db import SessionStore as DbSessionStore
    from django.contrib.sessions.models import Session
    from django.core.management import call_command
    from django.utils import timezone

    from mongo_sessions.connection import get_collection
    from mongo_sessions.session import SessionStore

    call_command("migrate", verbosity=0)
    forms = {
        "seconds": lambda: 7200,
        "timedelta": lambda: timedelta(hours=2),
        "naive datetime": lambda: timezone.now() + timedelta(hours=2),
        "None": lambda: None,
        "naive datetime in the past": lambda: timezone.now() - timedelta(hours=1),
    }
    results = {}
    for name, form in forms.items():
        with timezone.override("Pacific/Auckland"):
            stores = {}
            for engine in (DbSessionStore, SessionStore):
                store = engine()
                store["visits"] = 1
                store.set_expiry(form())
                store.save()
                stores[engine] = store.session_key
            db_key, mongo_key = stores[DbSessionStore], stores[SessionStore]
            db_left = (
                Session.objects.get(session_key=db_key).expire_date - timezone.now()
            ).total_seconds()
            mongo_left = (
                get_collection().find_one({"_id": mongo_key})["expire_date"]
                - datetime.now(dt_timezone.utc)
            ).total_seconds()
            results[name] = {
                "db_left": db_left,
                "mongo_left": mongo_left,
                "db_alive": DbSessionStore(db_key).get("visits") == 1,
                "mongo_alive": SessionStore(mongo_key).get("visits") == 1,
            }
    print(json.dumps(results))
    """
)


@pytest.mark.parametrize("host_zone", ["UTC", "America/Los_Angeles"])
def test_settings_configure_without_tzset(
    settings: Any, mongo_url: str, host_zone: str, sessions_collection: Any
) -> None:
    """settings.configure() does not call time.tzset(): naive times are the host's, as
    Django's database engine compares them; TIME_ZONE (Tokyo) must not be applied to them."""
    env = {**os.environ, "TZ": host_zone}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    url = mongo_url.rstrip("/") + f"/{TEST_DB}"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", CONFIGURED_SCRIPT, "Asia/Tokyo", url, sessions_collection.name],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert time.monotonic() - started < 120
    results = json.loads(result.stdout.strip().splitlines()[-1])
    for name, found in results.items():
        assert abs(found["mongo_left"] - found["db_left"]) < TOLERANCE, (name, found)
        assert found["mongo_alive"] is found["db_alive"], (name, found)
    for name in ("seconds", "timedelta", "naive datetime"):
        assert abs(results[name]["mongo_left"] - 7200) < TOLERANCE, results[name]
        assert results[name]["mongo_alive"]
    assert not results["naive datetime in the past"]["mongo_alive"]


# --- The setup command's imports read naive dates the same way --------------------------


def test_import_db_reads_naive_expiry_dates_as_django_wrote_them(
    naive_new_york: None, sessions_collection: Any
) -> None:
    with timezone.override("Asia/Tokyo"):
        db = DbSessionStore()
        db["visits"] = 1
        db.set_expiry(TWO_HOURS)
        db.save()
        assert db.session_key
        db_left = db_seconds_left(db.session_key)
        output = StringIO()
        call_command("mongo_sessions_setup", "--import-db", stdout=output)
    assert "imported 1 session(s)" in output.getvalue()
    assert abs(mongo_seconds_left(sessions_collection, db.session_key) - db_left) < TOLERANCE
    assert alive(SessionStore, db.session_key)


def test_migrate_seed_reads_naive_creation_dates_as_0x_wrote_them(
    settings: Any, naive_new_york: None, sessions_collection: Any
) -> None:
    """0.x stored timezone.now(): without USE_TZ a naive local time, kept by BSON as if UTC."""
    settings.MONGO_SESSIONS_TTL = 3600
    created = timezone.now() - timedelta(minutes=10)  # naive, New York wall clock
    sessions_collection.insert_one(
        {
            "_id": ObjectId(),
            "session_key": "s" * 32,
            "session_data": SessionStore().encode({"visits": 1}),
            "creation_date": created,
        }
    )
    with timezone.override("Asia/Tokyo"):
        output = StringIO()
        call_command("mongo_sessions_setup", "--migrate-seed", stdout=output)
    assert "converted 1 django-mongo-sessions 0.x session(s)" in output.getvalue()
    # 0.x kept it until creation_date + TTL on the same clock: 50 minutes from now.
    assert abs(mongo_seconds_left(sessions_collection, "s" * 32) - 50 * 60) < TOLERANCE
    assert SessionStore("s" * 32)["visits"] == 1
