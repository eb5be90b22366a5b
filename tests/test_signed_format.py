"""The signed format (mongo_sessions/signed.py) is Django's signing of a session.

What the package signs, Django's ``signing.loads`` and Django's own session
engines read back; what Django signs, the package reads back; what Django
refuses (another key, a changed character, a malformed timestamp), the
package refuses. Uncompressed values are Django's string byte for byte;
compressed ones are a valid zlib stream of their own (a smaller window).
Serialized data under MONGO_SESSIONS_COMPRESS_MIN_LENGTH bytes is not
compressed: Django's ``compress=False`` string.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.contrib.sessions.backends.db import SessionStore as DbSessionStore
from django.core import signing
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from mongo_sessions import signed
from mongo_sessions.session import SessionStore

SALT = "django.contrib.sessions.SessionStore"
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


def djangos(
    obj: Any, timestamp: int, monkeypatch: pytest.MonkeyPatch, compress: bool = True
) -> str:
    """Django's signing.dumps of a session at ``timestamp``."""
    monkeypatch.setattr(signing.time, "time", lambda: float(timestamp))
    try:
        return signing.dumps(obj, salt=SALT, compress=compress)
    finally:
        monkeypatch.undo()


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(), JSON, max_size=8))
def test_each_reads_what_the_other_signs(data: dict[str, Any]) -> None:
    ours = signed.dumps(data, SALT, signing.JSONSerializer, int(time.time()))
    assert signing.loads(ours, salt=SALT) == data
    theirs = signing.dumps(data, salt=SALT, compress=True)
    assert signed.loads(theirs, SALT, signing.JSONSerializer) == data


@pytest.mark.parametrize(
    "data",
    [{}, {"a": 1}, {"_auth_user_id": "42", "visits": 3}, {"text": "é☃"}],
    ids=["empty", "one key", "login", "non-ASCII"],
)
def test_uncompressed_values_are_djangos_byte_for_byte(
    data: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ours = signed.dumps(data, SALT, signing.JSONSerializer, 1_700_000_000)
    assert not ours.startswith(".")  # too small to compress
    assert ours == djangos(data, 1_700_000_000, monkeypatch)


# Serialized, 320 bytes that zlib shortens: Django's compress=True compresses it.
SMALL_COMPRESSIBLE = {"cart": "apple," * 48, "_auth_user_id": "42"}


def test_data_under_the_threshold_is_djangos_uncompressed_string(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ours = signed.dumps(SMALL_COMPRESSIBLE, SALT, signing.JSONSerializer, 1_700_000_000)
    assert djangos(SMALL_COMPRESSIBLE, 1_700_000_000, monkeypatch).startswith(".")
    assert ours == djangos(SMALL_COMPRESSIBLE, 1_700_000_000, monkeypatch, compress=False)
    assert signing.loads(ours, salt=SALT) == SMALL_COMPRESSIBLE
    assert DbSessionStore().decode(ours) == SMALL_COMPRESSIBLE


@pytest.mark.parametrize(("threshold", "compressed"), [(0, True), (320, True), (321, False)])
def test_the_threshold_is_the_serialized_length_in_bytes(
    settings: Any, threshold: int, compressed: bool
) -> None:
    assert len(signing.JSONSerializer().dumps(SMALL_COMPRESSIBLE)) == 320
    settings.MONGO_SESSIONS_COMPRESS_MIN_LENGTH = threshold
    ours = SessionStore().encode(SMALL_COMPRESSIBLE)
    assert ours.startswith(".") is compressed
    assert signing.loads(ours, salt=SALT) == SMALL_COMPRESSIBLE
    assert SessionStore().decode(ours) == SMALL_COMPRESSIBLE


@hypothesis_settings(max_examples=300, deadline=None)
@given(salt=st.text(), secret=st.text() | st.binary(), value=st.binary(max_size=2000))
def test_each_signature_is_djangos_hmac(salt: str, secret: str | bytes, value: bytes) -> None:
    assert (
        signed._signature(salt, secret, value)
        == signing.base64_hmac(salt + "signer", value, secret, algorithm="sha256").encode()
    )


def test_compressed_values_load_in_djangos_engines() -> None:
    data = {"cart": {f"item-{i}": i for i in range(200)}}
    ours = SessionStore().encode(data)
    assert ours.startswith(".")  # compressed
    assert len(ours) < len(json.dumps(data)) / 2
    assert signing.loads(ours, salt=SALT) == data
    assert DbSessionStore().decode(ours) == data


def test_djangos_engine_encoding_loads_here() -> None:
    data = {"cart": {f"item-{i}": i for i in range(200)}, "_auth_user_id": "1"}
    assert SessionStore().decode(DbSessionStore().encode(data)) == data


def test_a_fallback_key_still_reads_and_a_wrong_key_does_not(settings: Any) -> None:
    old = signing.dumps({"a": 1}, key="old secret " * 5, salt=SALT, compress=True)
    with pytest.raises(signing.BadSignature):
        signed.loads(old, SALT, signing.JSONSerializer)
    settings.SECRET_KEY_FALLBACKS = ["old secret " * 5]
    assert signed.loads(old, SALT, signing.JSONSerializer) == {"a": 1}
    settings.SECRET_KEY = "a new secret " * 5
    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(signing.BadSignature):
        signed.loads(signed.dumps({"a": 1}, "another salt", signing.JSONSerializer, 0), SALT,
                     signing.JSONSerializer)  # fmt: skip


def test_a_changed_secret_key_is_used_at_once(settings: Any) -> None:
    before = signed.dumps({"a": 1}, SALT, signing.JSONSerializer, 0)
    settings.SECRET_KEY = "rotated " * 8
    after = signed.dumps({"a": 1}, SALT, signing.JSONSerializer, 0)
    assert before != after
    assert signing.loads(after, salt=SALT) == {"a": 1}


MALFORMED = {
    "no separator": "abc",
    "a changed character": "changed",
    "an empty timestamp": "ts:",
    "a timestamp outside base62": "ts:!!",
}


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_what_django_refuses_is_refused(kind: str) -> None:
    good = signing.dumps({"a": 1}, salt=SALT)
    if kind == "no separator":
        value = "abc"
    elif kind == "a changed character":
        value = good[:3] + ("A" if good[3] != "A" else "B") + good[4:]
    else:
        payload = good.rsplit(":", 2)[0]
        stamp = "" if kind == "an empty timestamp" else "!!"
        value = signing.Signer(salt=SALT).sign(f"{payload}:{stamp}")
    with pytest.raises(Exception) as theirs:
        signing.loads(value, salt=SALT)
    with pytest.raises(Exception) as ours:
        signed.loads(value, SALT, signing.JSONSerializer)
    assert isinstance(ours.value, signing.BadSignature) == isinstance(
        theirs.value, signing.BadSignature
    )


class SortedJSONSerializer:
    def dumps(self, obj: Any) -> bytes:
        return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("latin-1")

    def loads(self, data: bytes) -> Any:
        return json.loads(data.decode("latin-1"))


def test_another_serializer_is_called_as_django_calls_it(settings: Any) -> None:
    settings.SESSION_SERIALIZER = f"{__name__}.SortedJSONSerializer"
    store = SessionStore()
    encoded = store.encode({"b": 1, "a": 2})
    assert signing.loads(encoded, salt=SALT, serializer=SortedJSONSerializer) == {"a": 2, "b": 1}
    payload = signing.b64_decode(encoded.rsplit(":", 2)[0].encode())
    assert payload == b'{"a":2,"b":1}'  # the serializer's own output, keys sorted
    assert store.decode(encoded) == {"a": 2, "b": 1}


def test_a_subclass_encode_decides(sessions_collection: Any) -> None:
    class Reversed(SessionStore):
        def encode(self, session_dict: dict[str, Any]) -> str:
            return super().encode({k[::-1]: v for k, v in session_dict.items()})

    store = Reversed()
    store["abc"] = 1
    store.save()
    assert Reversed(store.session_key).load() == {"cba": 1}
