"""MONGO_SESSIONS_FORMAT: the document format, switching formats with live sessions, --convert.

The document format stores the session as a sub-document: MongoDB queries
read it, it stores and loads back what Django's JSONSerializer stores and
loads back (checked against ``json`` for generated data, through BSON), and
refuses the rest at save, before anything is sent. Loads read both formats,
so a switch either way logs nobody out, and ``mongo_sessions_setup
--convert`` rewrites the stored sessions in place, in batches, without
overwriting a session saved meanwhile.
"""

from __future__ import annotations

import datetime
import enum
import json
import math
import sys
from collections import OrderedDict
from decimal import Decimal
from io import StringIO
from typing import Any

import bson
import pytest
from bson.codec_options import CodecOptions
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

import mongo_sessions
from mongo_sessions import convert, document
from mongo_sessions.checks import check_settings
from mongo_sessions.connection import get_collection
from mongo_sessions.exceptions import SessionDataError
from mongo_sessions.session import SessionStore
from mongo_sessions.testing import CommandCounter
from tests.logins import logged_in_session
from tests.support import requires_async_api

# As the package's collection decodes documents.
CODEC_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(
    tz_aware=True, tzinfo=datetime.timezone.utc
)


@pytest.fixture
def document_format(settings: Any) -> None:
    settings.MONGO_SESSIONS_FORMAT = "document"


def setup(*args: str) -> str:
    out = StringIO()
    call_command("mongo_sessions_setup", *args, stdout=out)
    return out.getvalue()


def saved(data: dict[str, Any]) -> SessionStore:
    store = SessionStore()
    store.update(data)
    store.save()
    return store


def through_json(data: Any) -> Any:
    """What Django's JSONSerializer loads back: the signed format's round trip."""
    return json.loads(json.dumps(data, separators=(",", ":")))


def through_bson(data: dict[str, Any]) -> dict[str, Any]:
    """What the document format loads back of ``data``, through BSON as MongoDB keeps it."""
    stored, _ = document.to_document(data)
    decoded = bson.decode(bson.encode({"data": stored}), codec_options=CODEC_OPTIONS)
    return document.from_document(decoded["data"])


# --- the stored document ------------------------------------------------------------------


def test_the_session_is_a_sub_document_that_queries_read(
    document_format: None, sessions_collection: Any
) -> None:
    full = saved({"_auth_user_id": "42", "cart": {"apple": 2, "coffee": 1}, "visits": 3})
    empty = saved({"_auth_user_id": "7", "cart": {}})
    saved({"visits": 1})  # no cart at all
    stored = sessions_collection.find_one({"_id": full.session_key})
    assert stored["data"] == {"_auth_user_id": "42", "cart": {"apple": 2, "coffee": 1}, "visits": 3}
    assert stored["user_id"] == "42"
    assert sessions_collection.find_one({"_id": empty.session_key})["data"]["cart"] == {}
    # The README's query: live sessions holding a non-empty cart.
    now = datetime.datetime.now(datetime.timezone.utc)
    query = {"expire_date": {"$gt": now}, "data.cart": {"$exists": True, "$ne": {}}}
    assert [d["_id"] for d in sessions_collection.find(query)] == [full.session_key]
    assert sessions_collection.count_documents({"data.cart.apple": {"$gte": 2}}) == 1
    # And an aggregation: the items in all carts.
    pipeline = [
        {"$match": {"data.cart": {"$type": "object"}}},
        {"$project": {"items": {"$objectToArray": "$data.cart"}}},
        {"$unwind": "$items"},
        {"$group": {"_id": None, "items": {"$sum": "$items.v"}}},
    ]
    assert [row["items"] for row in sessions_collection.aggregate(pipeline)] == [3]


def test_load_modify_save_sends_one_find_and_one_update(
    document_format: None, command_counter: CommandCounter
) -> None:
    key = saved({"visits": 1}).session_key
    command_counter.reset()
    session = SessionStore(key)
    session["visits"] = session["visits"] + 1
    session.save()
    assert command_counter.commands == ["find", "update"]
    assert SessionStore(key)["visits"] == 2


def test_awkward_keys_are_escaped_and_load_back(
    document_format: None, sessions_collection: Any
) -> None:
    data = {
        "$where": 1,
        "a.b": {"c.d": [{"$gt": ""}]},
        "": "empty key",
        "%41": "a key that looks escaped",
        "nul\x00key": True,
        "$ref": "x",
        "$id": 1,
        "plain": {"ok": None},
    }
    store = saved(data)
    stored = sessions_collection.find_one({"_id": store.session_key})["data"]

    def keys(value: Any) -> list[str]:
        if isinstance(value, dict):
            return [k for key, item in value.items() for k in [key, *keys(item)]]
        if isinstance(value, list):
            return [k for item in value for k in keys(item)]
        return []

    for key in keys(stored):
        assert key and not key.startswith("$") and "." not in key and "\x00" not in key, key
    assert stored["plain"] == {"ok": None}  # ordinary keys are stored as they are
    assert stored["%a%2Eb"] == {"%c%2Ed": [{"%%24gt": ""}]}
    assert SessionStore(store.session_key).load() == data


def test_64_bit_integers_load_back_as_int(document_format: None) -> None:
    data = {"small": 5, "big": 2**40, "edges": [2**63 - 1, -(2**63)]}
    loaded = SessionStore(saved(data).session_key).load()
    assert loaded == data
    assert all(type(v) is int for v in [loaded["small"], loaded["big"], *loaded["edges"]])


class Colour(enum.IntEnum):
    RED = 1


class Text(str):
    pass


# value -> what Django's JSONSerializer loads back of it
JSON_CONVERSIONS: dict[str, tuple[Any, Any]] = {
    "tuple": ((1, "a"), [1, "a"]),
    "int key": ({1: "a"}, {"1": "a"}),
    "float key": ({1.5: "a"}, {"1.5": "a"}),
    "bool and None keys": ({True: 1, False: 2, None: 3}, {"true": 1, "false": 2, "null": 3}),
    "int and str key clash": ({1: "int", "1": "str"}, {"1": "str"}),
    "IntEnum": (Colour.RED, 1),
    "str subclass": (Text("t"), "t"),
    "OrderedDict": (OrderedDict(b=1, a=2), {"b": 1, "a": 2}),
    "nan and infinities": ([math.inf, -math.inf], [math.inf, -math.inf]),
}


@pytest.mark.parametrize("kind", list(JSON_CONVERSIONS))
def test_what_json_turns_into_something_else_loads_back_as_json_would(
    kind: str, document_format: None
) -> None:
    value, expected = JSON_CONVERSIONS[kind]
    assert through_json({"v": value}) == {"v": expected}  # the premise
    loaded = SessionStore(saved({"v": value}).session_key).load()
    assert loaded == {"v": expected}
    assert [type(x) for x in json.loads(json.dumps(loaded))] == [str]


def test_nan_loads_back_as_nan(document_format: None) -> None:
    loaded = SessionStore(saved({"v": math.nan}).session_key).load()
    assert math.isnan(loaded["v"])


# Text without lone surrogates (BSON's strings are UTF-8): those are refused, see below.
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)))
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | TEXT,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(
            TEXT | st.integers() | st.booleans(),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.dictionaries(TEXT, JSON_VALUES, max_size=6))
def test_loads_back_what_jsonserializer_loads_back(data: dict[str, Any]) -> None:
    assert through_bson(data) == through_json(data)


# name -> (session data, what the message says)
NOT_STORABLE: dict[str, tuple[dict[Any, Any], str]] = {
    "a datetime": ({"when": datetime.datetime(2026, 1, 1)}, "session['when']: a datetime"),
    "a Decimal": ({"cart": {"price": Decimal("1.10")}}, "session['cart']['price']: a Decimal"),
    "a set": ({"tags": [1, {1, 2}]}, "session['tags'][1]: a set"),
    "bytes": ({"raw": b"\x00"}, "session['raw']: a bytes"),
    "a tuple key": ({"cart": {(1, 2): "x"}}, "a key must be a str, int, float, bool or None"),
    "an integer over int64": ({"n": 2**63}, "session['n']: an integer outside MongoDB's"),
    "an integer under int64": ({"n": [-(2**63) - 1]}, "session['n'][0]: an integer outside"),
    "a lone surrogate": ({"name": "a\ud800b"}, "session['name']: a string that is not valid"),
    "a lone surrogate in a key": ({"\udfff": 1}, "not valid Unicode"),
}


@pytest.mark.parametrize("kind", list(NOT_STORABLE))
def test_what_the_format_does_not_store_is_an_error_at_save_and_nothing_is_sent(
    kind: str, document_format: None, command_counter: CommandCounter
) -> None:
    store = saved({"cart": {"apple": 1}})
    key = store.session_key
    data, message = NOT_STORABLE[kind]
    store.update(data)
    command_counter.reset()
    with pytest.raises(SessionDataError) as raised:
        store.save()
    assert command_counter.commands == []
    assert isinstance(raised.value, ValueError)
    assert message in str(raised.value)
    assert "cannot be serialized as a document" in str(raised.value)
    assert SessionStore(key).load() == {"cart": {"apple": 1}}


def test_a_circular_reference_is_an_error_at_save(document_format: None) -> None:
    loop: list[Any] = []
    loop.append(loop)
    store = SessionStore()
    store["loop"] = loop
    with pytest.raises(SessionDataError, match="circular reference"):
        store.save()
    with pytest.raises(ValueError, match="Circular reference"):
        json.dumps({"loop": loop})  # as JSON refuses it


def nested(depth: int) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for _ in range(depth - 1):
        data = {"d": data}
    return data


def test_nesting_up_to_the_bound_is_stored_deeper_is_an_error(
    document_format: None, sessions_collection: Any
) -> None:
    store = saved({"n": nested(document.MAX_DEPTH - 1)})  # the data itself is one level
    assert SessionStore(store.session_key).load() == {"n": nested(document.MAX_DEPTH - 1)}
    deeper = SessionStore()
    deeper["n"] = nested(document.MAX_DEPTH)
    with pytest.raises(SessionDataError, match=f"more than {document.MAX_DEPTH} levels"):
        deeper.save()


def test_saved_and_loaded_from_a_deep_stack(document_format: None) -> None:
    data = {"n": nested(60)}

    def at_depth(levels: int) -> dict[str, Any]:
        if levels:
            return at_depth(levels - 1)
        store = saved(data)
        return SessionStore(store.session_key).load()

    assert at_depth(sys.getrecursionlimit() - 80) == data


def test_over_16_mb_is_an_error_at_save(document_format: None, sessions_collection: Any) -> None:
    store = SessionStore()
    store["blob"] = ["x" * 1_000_000] * 17
    with pytest.raises(SessionDataError, match="16 MB"):
        store.save()
    assert sessions_collection.count_documents({}) == 0


def test_an_in_place_change_is_seen_by_the_touch_rule(document_format: None, settings: Any) -> None:
    settings.MONGO_SESSIONS_TOUCH_AFTER = 3600
    key = saved({"cart": ["apple"]}).session_key
    session = SessionStore(key)
    session["cart"].append("pear")  # in place: Django does not mark it modified
    session.save()  # what SESSION_SAVE_EVERY_REQUEST calls
    assert SessionStore(key)["cart"] == ["apple", "pear"]


# --- the setting and its checks ---------------------------------------------------------


def test_an_unknown_format_is_e050_and_refused_at_save(settings: Any) -> None:
    settings.MONGO_SESSIONS_FORMAT = "bson"
    assert [m.id for m in check_settings()] == ["mongo_sessions.E050"]
    with pytest.raises(ImproperlyConfigured, match="E050"):
        saved({"a": 1})


class SortedJSONSerializer:
    def dumps(self, obj: Any) -> bytes:
        return json.dumps(obj, sort_keys=True).encode("latin-1")

    def loads(self, data: bytes) -> Any:
        return json.loads(data.decode("latin-1"))


def test_the_document_format_with_another_serializer_is_e051(settings: Any) -> None:
    settings.SESSION_SERIALIZER = f"{__name__}.SortedJSONSerializer"
    assert check_settings() == []  # the signed format takes any serializer
    saved({"a": 1})
    settings.MONGO_SESSIONS_FORMAT = "document"
    messages = check_settings()
    assert [m.id for m in messages] == ["mongo_sessions.E051"]
    assert "SortedJSONSerializer" in messages[0].msg
    with pytest.raises(ImproperlyConfigured, match="E051"):
        saved({"a": 1})


def test_a_store_class_may_choose_its_format(sessions_collection: Any) -> None:
    class DocumentStore(SessionStore):
        session_format = "document"

    signed_one, document_one = saved({"a": 1}), DocumentStore()
    document_one["a"] = 1
    document_one.save()
    assert isinstance(sessions_collection.find_one({"_id": signed_one.session_key})["data"], str)
    assert sessions_collection.find_one({"_id": document_one.session_key})["data"] == {"a": 1}


# --- switching formats with live sessions ----------------------------------------------------


def test_switching_either_way_logs_nobody_out(settings: Any, sessions_collection: Any) -> None:
    def data_of(store: SessionStore) -> Any:
        return sessions_collection.find_one({"_id": store.session_key})["data"]

    before = saved({"_auth_user_id": "1", "cart": {"apple": 1}})
    assert isinstance(data_of(before), str)

    settings.MONGO_SESSIONS_FORMAT = "document"
    during = saved({"_auth_user_id": "2", "cart": {"pear": 2}})
    session = SessionStore(before.session_key)
    assert session.load() == {"_auth_user_id": "1", "cart": {"apple": 1}}  # still logged in
    session["cart"] = {"apple": 2}
    session.save()  # its next save rewrites it in the new format
    assert data_of(before) == {"_auth_user_id": "1", "cart": {"apple": 2}}
    assert data_of(during) == {"_auth_user_id": "2", "cart": {"pear": 2}}

    settings.MONGO_SESSIONS_FORMAT = "signed"
    assert SessionStore(during.session_key).load() == {"_auth_user_id": "2", "cart": {"pear": 2}}
    session = SessionStore(during.session_key)
    session["visits"] = 1
    session.save()
    assert isinstance(data_of(during), str)
    assert SessionStore(during.session_key).load()["visits"] == 1
    assert SessionStore(before.session_key).load()["cart"] == {"apple": 2}


@requires_async_api
async def test_async_switching_either_way_logs_nobody_out(
    settings: Any, sessions_collection: Any
) -> None:
    before = SessionStore()
    await before.aset("cart", {"apple": 1})
    await before.asave()
    settings.MONGO_SESSIONS_FORMAT = "document"
    session = SessionStore(before.session_key)
    assert await session.aget("cart") == {"apple": 1}
    await session.aset("cart", {"apple": 2})
    await session.asave()
    assert sessions_collection.find_one({"_id": before.session_key})["data"] == {
        "cart": {"apple": 2}
    }
    settings.MONGO_SESSIONS_FORMAT = "signed"
    assert await SessionStore(before.session_key).aload() == {"cart": {"apple": 2}}


@pytest.mark.django_db
def test_per_user_functions_and_a_login_span_both_formats(
    settings: Any, sessions_collection: Any, alice: Any
) -> None:
    def data_of(key: str) -> Any:
        return sessions_collection.find_one({"_id": key})["data"]

    signed_one = logged_in_session(alice, cart=["apple"])
    visitor = saved({"cart": ["pear"]})  # not logged in yet
    settings.MONGO_SESSIONS_FORMAT = "document"
    document_one = logged_in_session(alice)
    assert isinstance(data_of(signed_one.session_key), str)
    assert data_of(document_one.session_key) == {"_auth_user_id": str(alice.pk)}

    # The visitor logs in after the switch: the key changes, as login() does,
    # and the authenticated session is written in the new format with the cart.
    login = SessionStore(visitor.session_key)
    assert login["cart"] == ["pear"]
    login.cycle_key()
    login["_auth_user_id"] = str(alice.pk)
    login.save()
    assert not SessionStore().exists(visitor.session_key)
    assert data_of(login.session_key) == {"cart": ["pear"], "_auth_user_id": str(alice.pk)}

    listed = mongo_sessions.user_sessions(alice)
    assert {s.key_hash for s in listed} == {
        mongo_sessions.hash_session_key(s.session_key) for s in (signed_one, document_one, login)
    }
    assert mongo_sessions.revoke_user_sessions(alice, keep=document_one) == 2
    assert sessions_collection.count_documents({}) == 1
    assert SessionStore(document_one.session_key).load() == {"_auth_user_id": str(alice.pk)}


# --- mongo_sessions_setup --convert ------------------------------------------------------------


def test_convert_rewrites_live_sessions_in_batches_both_ways(
    settings: Any, sessions_collection: Any, command_counter: CommandCounter
) -> None:
    sessions = [saved({"n": i, "cart": {"apple": i}}) for i in range(7)]
    tampered = saved({"n": -1})
    sessions_collection.update_one({"_id": tampered.session_key}, {"$set": {"data": "x:y:z"}})
    settings.MONGO_SESSIONS_FORMAT = "document"
    setup()  # the indexes: --check reports the other format, and fails only for them
    assert "found 8 live session(s) not in the document format" in setup("--check")

    command_counter.reset()
    report = convert.convert_sessions(get_collection(), batch_size=3)
    assert (report.converted, report.left, report.saved_meanwhile) == (7, 1, 0)
    # Three batches of at most three, each one find and one bulk update; then an empty find.
    assert command_counter.commands == ["find", "update"] * 3 + ["find"]
    for i, store in enumerate(sessions):
        stored = sessions_collection.find_one({"_id": store.session_key})["data"]
        assert stored == {"n": i, "cart": {"apple": i}}
        assert SessionStore(store.session_key).load() == {"n": i, "cart": {"apple": i}}
    tampered_data = sessions_collection.find_one({"_id": tampered.session_key})["data"]
    assert tampered_data == "x:y:z"  # left as it was, and still no session
    assert "found 1 live session(s)" in setup("--check")

    settings.MONGO_SESSIONS_FORMAT = "signed"
    output = setup("--convert")
    assert "converted 7 session(s) to the signed format, 0 left" in output
    for i, store in enumerate(sessions):
        stored = sessions_collection.find_one({"_id": store.session_key})["data"]
        assert isinstance(stored, str)
        assert SessionStore(store.session_key).load() == {"n": i, "cart": {"apple": i}}


def test_convert_to_signed_with_a_bad_compress_setting_fails_with_e052(
    settings: Any, sessions_collection: Any
) -> None:
    settings.MONGO_SESSIONS_FORMAT = "document"
    stored = [saved({"n": i}) for i in range(3)]
    settings.MONGO_SESSIONS_FORMAT = "signed"
    settings.MONGO_SESSIONS_COMPRESS_MIN_LENGTH = -5
    # call_command() skips the system checks: the conversion itself must refuse.
    with pytest.raises(CommandError, match=r"MONGO_SESSIONS_COMPRESS_MIN_LENGTH.*E052"):
        setup("--convert")
    for i, store in enumerate(stored):  # nothing was rewritten
        assert sessions_collection.find_one({"_id": store.session_key})["data"] == {"n": i}


def test_convert_never_overwrites_a_session_saved_meanwhile(
    settings: Any, sessions_collection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = saved({"cart": {"apple": 1}})
    settings.MONGO_SESSIONS_FORMAT = "document"
    original = convert.in_format

    def a_request_saves_in_between(*args: Any) -> Any:
        converted = original(*args)
        session = SessionStore(store.session_key)
        session["cart"] = {"apple": 5}
        session.save()  # a request, in the document format already
        return converted

    monkeypatch.setattr(convert, "in_format", a_request_saves_in_between)
    report = convert.convert_sessions(get_collection())
    assert (report.converted, report.saved_meanwhile) == (0, 1)
    assert SessionStore(store.session_key).load() == {"cart": {"apple": 5}}


def test_convert_uses_the_salt_of_the_configured_engine(
    settings: Any, sessions_collection: Any
) -> None:
    settings.SESSION_ENGINE = "tests.custom_engine"
    from tests.custom_engine import SessionStore as CustomStore

    store = CustomStore()
    store["a"] = 1
    store.save()
    assert store.key_salt != SessionStore().key_salt
    settings.MONGO_SESSIONS_FORMAT = "document"
    assert convert.convert_sessions(get_collection()).converted == 1
    assert sessions_collection.find_one({"_id": store.session_key})["data"] == {"a": 1}


def big_signed_session(sessions_collection: Any) -> SessionStore:
    """A signed session that fits only because it compresses: over 16 MiB as a document."""
    big = saved({"big": "a" * 17_000_000})
    assert len(bson.encode(sessions_collection.find_one({"_id": big.session_key}))) < 1_000_000
    return big


def test_convert_leaves_a_session_too_large_for_the_target_format(
    settings: Any, sessions_collection: Any
) -> None:
    """One session over 16 MiB as a document: left as it was, the others converted, exit 0."""
    sessions = [saved({"n": i}) for i in range(3)]
    big = big_signed_session(sessions_collection)
    before = sessions_collection.find_one({"_id": big.session_key})["data"]
    settings.MONGO_SESSIONS_FORMAT = "document"
    for _ in range(2):  # a re-run does not fail on it either
        output = setup("--convert")
        assert big.session_key not in output and "aaaaaaaa" not in output
        assert len(output) < 2000
    assert "converted 0 session(s) to the document format, 1 left" in output
    for i, store in enumerate(sessions):
        assert sessions_collection.find_one({"_id": store.session_key})["data"] == {"n": i}
    assert sessions_collection.find_one({"_id": big.session_key})["data"] == before
    assert SessionStore(big.session_key).load() == {"big": "a" * 17_000_000}


def test_convert_counts_a_rewrite_the_server_refuses_as_left(
    settings: Any, sessions_collection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write error of one document in the unordered batch: the others are converted."""
    sessions = [saved({"n": i}) for i in range(3)]
    big = big_signed_session(sessions_collection)
    before = sessions_collection.find_one({"_id": big.session_key})["data"]
    settings.MONGO_SESSIONS_FORMAT = "document"
    # Without the size check the oversized rewrite reaches the server, which refuses it.
    monkeypatch.setattr(
        convert, "check_document_size", lambda document, operation: None, raising=False
    )
    report = convert.convert_sessions(get_collection())
    assert (report.converted, report.left, report.saved_meanwhile) == (3, 1, 0)
    for i, store in enumerate(sessions):
        assert sessions_collection.find_one({"_id": store.session_key})["data"] == {"n": i}
    assert sessions_collection.find_one({"_id": big.session_key})["data"] == before
