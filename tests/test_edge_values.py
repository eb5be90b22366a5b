"""Edge values: what Django's database engine stores, this engine stores and loads back
equal; what it cannot store is a SessionDataError (a ValueError) at save, before anything
is sent, with the stored version intact. Extreme dates, odd data, deep nesting, sizes
around MongoDB's 16 MiB limit, and the serializers Django ships.
"""

from __future__ import annotations

import base64
import json
import random
import threading
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import bson
import django
import pytest
from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.backends.db import SessionStore as DbSessionStore

from mongo_sessions.exceptions import SessionDataError
from mongo_sessions.session import SessionStore
from tests.support import requires_async_api

pytestmark = pytest.mark.django_db

MAX_DOCUMENT_SIZE = 16 * 1024 * 1024  # MongoDB's limit, in bytes
LATEST = datetime.max.replace(tzinfo=timezone.utc)
# Nesting levels of margin around the serializer's limit: the engine's own frames
# between save() and the serializer must not decide a test.
DEPTH_MARGIN = 100

# PickleSerializer exists up to Django 4.2 (removed in 5.0).
requires_pickle_serializer = pytest.mark.skipif(
    django.VERSION >= (5, 0), reason="Django >= 5.0 ships no PickleSerializer"
)


class Unserializable:
    pass


def round_trip(engine: type[SessionBase], data: dict[str, Any]) -> dict[str, Any] | Exception:
    """Save ``data`` with ``engine`` and load it back with a new store; or the error."""
    store = engine()
    store.update(data)
    try:
        store.save()
    except Exception as e:
        return e
    assert store.session_key
    return engine(store.session_key).load()


def same(a: Any, b: Any) -> bool:
    """Equality that also holds for NaN."""
    return repr(a) == repr(b)


def assert_like_the_database_engine(data: dict[str, Any]) -> dict[str, Any] | Exception:
    """Assert this engine stores and loads ``data`` as Django's database engine does.

    Where Django's engine cannot store it, this one raises SessionDataError.
    """
    db = round_trip(DbSessionStore, data)
    mongo = round_trip(SessionStore, data)
    if isinstance(db, Exception):
        assert isinstance(mongo, SessionDataError), (db, mongo)
        assert isinstance(mongo, ValueError)
    else:
        assert not isinstance(mongo, Exception), (data, mongo)
        assert same(mongo, db)
    return mongo


# --- Data -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {"big int": 10**100, "negative": -(2**70)},
        {"floats": [0.1, -0.0, 1e308, float("inf"), float("-inf"), float("nan")]},
        {"tuple": (1, 2), "int keys": {1: "one"}, "nested": [[[]], {"": {}}]},
        {"$where": "1", "a.b": {"$gt": ""}, "\x00nul": "\x00", "": ""},
        {"lone surrogate": "\ud800", "emoji": "\U0001f600", "rtl": "\u202e"},
        {"_auth_user_id": "\udcff"},  # a user id that is no valid UTF-8
        {"_auth_user_id": 42, "_auth_user_backend": "x" * 10_000},
        {"long key " * 1000: 1},
    ],
    ids=["ints", "floats", "json coercions", "operators", "unicode", "bad user id", "user", "key"],
)
def test_data_the_database_engine_stores_loads_back_equal(
    sessions_collection: Any, data: dict[str, Any]
) -> None:
    assert_like_the_database_engine(data)


@pytest.mark.parametrize(
    "value",
    [Unserializable(), {1, 2}, b"bytes", datetime(2024, 1, 1), lambda: None],
    ids=["object", "set", "bytes", "datetime", "function"],
)
def test_data_no_engine_can_serialize_is_a_data_error_with_the_stored_version_intact(
    sessions_collection: Any, value: Any
) -> None:
    assert_like_the_database_engine({"value": value})
    assert_keeps_stored_version(sessions_collection, {"value": value})


def assert_keeps_stored_version(collection: Any, bad: dict[str, Any]) -> None:
    store = SessionStore()
    store["cart"] = ["apple"]
    store.save()
    before = collection.find_one({"_id": store.session_key})
    store.update(bad)
    with pytest.raises(SessionDataError):
        store.save()
    assert collection.find_one({"_id": store.session_key}) == before
    assert SessionStore(store.session_key).load() == {"cart": ["apple"]}


# --- Extreme expiry values ----------------------------------------------------------------


@pytest.mark.parametrize("time_zone", ["America/New_York", "Asia/Tokyo"])
@pytest.mark.parametrize("use_tz", [False, True], ids=["no USE_TZ", "USE_TZ"])
@pytest.mark.parametrize(
    "expiry",
    [
        datetime.max,
        datetime.min,
        datetime.max.replace(tzinfo=timezone.utc),
        datetime.min.replace(tzinfo=timezone.utc),
        datetime(9999, 12, 31, 12, tzinfo=timezone(timedelta(hours=-12))),
        10**12,
        -(10**12),
        float("inf"),
    ],
    ids=[
        "naive max",
        "naive min",
        "aware max",
        "aware min",
        "year 9999 at -12:00",
        "1e12 seconds",
        "-1e12 seconds",
        "infinite seconds",
    ],
)
def test_extreme_expiry(
    settings: Any, sessions_collection: Any, use_tz: bool, time_zone: str, expiry: Any
) -> None:
    """Stored whatever the value, never a raw exception (Django's engine raises
    OverflowError or ValueError for several); what MongoDB keeps is the instant, clamped
    to years 1-9999 UTC, and the session lives or not as Django's engine says."""
    settings.USE_TZ = use_tz
    settings.TIME_ZONE = time_zone
    # No TTL index: the test server's monitor (every second) would delete the
    # sessions stored as long expired before their document is read back below.
    settings.MONGO_SESSIONS_AUTO_INDEX = False
    # As set_expiry() stores it (a datetime becomes its ISO text).
    stored_expiry = expiry.isoformat() if isinstance(expiry, datetime) else expiry
    data = {"visits": 1, "_session_expiry": stored_expiry}
    naive = isinstance(expiry, datetime) and expiry.tzinfo is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        db = round_trip(DbSessionStore, data)
        mongo = round_trip(SessionStore, data)
    # Naive with USE_TZ: read in TIME_ZONE, with Django's RuntimeWarning.
    assert any(issubclass(w.category, RuntimeWarning) for w in caught) is (use_tz and naive)
    assert not isinstance(mongo, Exception), mongo
    if not isinstance(db, Exception):
        assert same(mongo, db)
    far_future = expiry.year > 5000 if isinstance(expiry, datetime) else expiry > 0
    assert (mongo == data) is far_future  # alive, and loaded back equal
    expire_date = sessions_collection.find_one({})["expire_date"]
    if far_future:
        assert expire_date > datetime(9999, 12, 30, tzinfo=timezone.utc)
    else:
        assert expire_date < datetime(2, 1, 1, tzinfo=timezone.utc)


def test_set_expiry_datetime_max_without_use_tz(settings: Any, sessions_collection: Any) -> None:
    """The issue's case: a raw OverflowError before; now stored, loaded, alive."""
    settings.USE_TZ = False
    settings.TIME_ZONE = "America/New_York"
    store = SessionStore()
    store["visits"] = 1
    store.set_expiry(datetime.max)
    store.save()
    loaded = SessionStore(store.session_key)
    assert loaded["visits"] == 1
    assert loaded.get_expiry_date() == datetime.max
    assert sessions_collection.find_one({"_id": store.session_key})["expire_date"] == (
        LATEST.replace(microsecond=999000)  # BSON dates have millisecond precision
    )


@pytest.mark.parametrize(
    "expiry", ["soon", float("nan"), [1], {"$date": 1}], ids=["text", "nan", "list", "dict"]
)
def test_expiry_that_is_no_date_is_a_data_error(sessions_collection: Any, expiry: Any) -> None:
    store = SessionStore()
    store["visits"] = 1
    store.save()
    store["_session_expiry"] = expiry
    with pytest.raises(SessionDataError, match="expiry"):
        store.save()
    assert SessionStore(store.session_key).load() == {"visits": 1}


# --- Deep nesting ---------------------------------------------------------------------------


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def on_empty_stack(function: Callable[[], Any]) -> Any:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = function()
        except RecursionError as e:
            result["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return result.get("error", result.get("value"))


@pytest.fixture(scope="module")
def json_depth_limit() -> int:
    """The first nesting depth that Django's JSON serializer refuses, even on an empty stack."""
    low, high = 1, 200_000
    while high - low > 1:
        middle = (low + high) // 2
        outcome = on_empty_stack(lambda d=middle: json.dumps(nested(d), separators=(",", ":")))
        if isinstance(outcome, RecursionError):
            high = middle
        else:
            low = middle
    return high


def deep_in_the_stack(levels: int, function: Callable[[], Any]) -> Any:
    """Call ``function`` under ``levels`` extra Python frames and C calls (map)."""
    if levels == 0:
        return function()
    return next(map(lambda _: deep_in_the_stack(levels - 1, function), [None]))


# As deep as this test's own stack allows, with room for the engine and pytest.
STACK_LEVELS = 300


def test_deep_session_loads_from_any_stack_depth(
    sessions_collection: Any, json_depth_limit: int
) -> None:
    """850 levels (the issue's case), and the deepest the serializer can encode at all."""
    deepest = json_depth_limit - DEPTH_MARGIN
    for depth in sorted({min(850, deepest), deepest}):
        data = {"tree": nested(depth)}
        store = SessionStore()
        store.update(data)
        store.save()
        text = json.dumps(data, separators=(",", ":"))
        # Where the plain decoder would fail, the session still loads whole.
        failed_in_place = deep_in_the_stack(STACK_LEVELS, lambda t=text: _fails(json.loads, t))
        loaded = deep_in_the_stack(STACK_LEVELS, lambda k=store.session_key: SessionStore(k).load())
        assert loaded == data, depth
        if depth == deepest:
            assert failed_in_place  # the test does reach the case it is about


def _fails(function: Callable[[str], Any], argument: str) -> bool:
    try:
        function(argument)
    except RecursionError:
        return True
    return False


def test_too_deep_for_the_serializer_is_a_data_error_from_any_stack(
    sessions_collection: Any, json_depth_limit: int
) -> None:
    """5,000 levels (the issue's case) where that is beyond the serializer, and beyond."""
    depths = {json_depth_limit + DEPTH_MARGIN, max(5000, json_depth_limit + DEPTH_MARGIN)}
    for depth in sorted(depths):
        assert_keeps_stored_version(sessions_collection, {"tree": nested(depth)})
        # Also when save() runs deep in a request's stack: the same answer.
        with pytest.raises(SessionDataError, match="nested too deeply"):
            deep_in_the_stack(STACK_LEVELS, lambda d=depth: _save(nested(d)))
    # What the serializer can encode from an empty stack is stored from a deep one.
    deepest = nested(json_depth_limit - DEPTH_MARGIN)
    key = deep_in_the_stack(STACK_LEVELS, lambda: _save({"tree": deepest}))
    assert SessionStore(key).load() == {"tree": deepest}


def _save(data: dict[str, Any]) -> str:
    store = SessionStore()
    store.update(data)
    store.save()
    assert store.session_key
    return store.session_key


@requires_async_api
async def test_deep_session_from_async_code(
    sessions_collection: Any, json_depth_limit: int
) -> None:
    data = {"tree": nested(json_depth_limit - DEPTH_MARGIN)}
    store = SessionStore()
    await store.aupdate(data)
    await store.asave()
    assert await SessionStore(store.session_key).aload() == data
    store["tree"] = nested(json_depth_limit + DEPTH_MARGIN)
    with pytest.raises(SessionDataError):
        await store.asave()
    assert await SessionStore(store.session_key).aload() == data


# --- Sizes around 16 MiB ---------------------------------------------------------------------

KEY = "k" * 32


@pytest.fixture(scope="module")
def blob_source() -> str:
    # Random base64 text: zlib (the signer compresses) cannot shrink it much.
    return base64.urlsafe_b64encode(random.Random(16).randbytes(13_000_000)).decode()


def document_size(blob: str) -> int:
    """The size of the document this engine would store for {"blob": blob}."""
    store = SessionStore()
    now = datetime.now(timezone.utc)
    data = store.encode({"blob": blob})
    return len(bson.encode({"_id": KEY, "data": data, "expire_date": now, "created_at": now}))


def blob_for(source: str, target: int) -> str:
    """Return a prefix of ``source`` whose document is within 1 KiB below ``target`` bytes."""
    # The size grows linearly with the length (random text compresses evenly):
    # calibrate on small prefixes, then correct from the real size, which costs
    # a full serialization of 16 MB each time.
    small, large = 1_000_000, 2_000_000
    slope = (document_size(source[:large]) - document_size(source[:small])) / (large - small)
    length = small + int((target - 512 - document_size(source[:small])) / slope)
    for _ in range(6):
        size = document_size(source[:length])
        if target - 1024 < size <= target:
            return source[:length]
        length += int((target - 512 - size) / slope)
    raise AssertionError(f"no blob within 1 KiB below {target} bytes (last {length})")


@pytest.fixture(scope="module")
def blobs(blob_source: str) -> Iterator[tuple[str, str]]:
    """Data just under MongoDB's limit, and data just over it."""
    under = blob_for(blob_source, MAX_DOCUMENT_SIZE)
    over = blob_for(blob_source, MAX_DOCUMENT_SIZE + 1024)
    assert document_size(over) > MAX_DOCUMENT_SIZE
    yield under, over


def test_sizes_around_16_mib(sessions_collection: Any, blobs: tuple[str, str]) -> None:
    under, over = blobs
    # Created just under the limit: stored and loaded back equal.
    store = SessionStore()
    store["blob"] = under
    store._session_key = KEY  # the key document_size() counted (after the data: no load)
    store.save(must_create=True)
    stored = sessions_collection.find_one({"_id": KEY})
    assert MAX_DOCUMENT_SIZE - 1024 < len(bson.encode(stored)) <= MAX_DOCUMENT_SIZE
    assert SessionStore(KEY)["blob"] == under
    # Updated to just over it: SessionDataError (not the server's code 10334), nothing changed.
    store["blob"] = over
    with pytest.raises(SessionDataError, match="16 MB"):
        store.save()
    assert sessions_collection.find_one({"_id": KEY}) == stored
    # Created just over it: nothing is stored.
    fresh = SessionStore()
    fresh["blob"] = over
    with pytest.raises(SessionDataError, match="16 MB"):
        fresh.save()
    assert sessions_collection.count_documents({}) == 1


# --- PickleSerializer (Django 4.2) -----------------------------------------------------------


@requires_pickle_serializer
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(
    "data",
    [
        {"when": datetime(2024, 1, 1, tzinfo=timezone.utc), "set": {1, 2}, "bytes": b"\x00"},
        {"tree": nested(50), "tuple": (1, (2, 3)), "nan": float("nan")},
    ],
    ids=["python types", "nesting"],
)
def test_pickle_serializer_round_trips_like_the_database_engine(
    settings: Any, sessions_collection: Any, data: dict[str, Any]
) -> None:
    settings.SESSION_SERIALIZER = "django.contrib.sessions.serializers.PickleSerializer"
    assert_like_the_database_engine(data)


@requires_pickle_serializer
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(
    "make_value",
    [lambda: lambda: None, threading.Lock, lambda: nested(100_000)],
    ids=["lambda", "lock", "too deep"],
)
def test_pickle_serializer_refusals_are_data_errors(
    settings: Any, sessions_collection: Any, make_value: Callable[[], Any]
) -> None:
    settings.SESSION_SERIALIZER = "django.contrib.sessions.serializers.PickleSerializer"
    value = make_value()
    assert_like_the_database_engine({"value": value})
    assert_keeps_stored_version(sessions_collection, {"value": value})
