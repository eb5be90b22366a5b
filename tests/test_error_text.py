"""Driver errors become short messages without session keys or session data.

pymongo's ``str()`` of a server error appends the server's whole reply ("full
error: {...}"): a write error's ``op`` (the filter and the update: the session
key and its data), a duplicate key's ``keyValue``. The package's messages and
logs carry the error's class, code, codeName and a bounded errmsg instead.
Real errors from the test server, no fakes.
"""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import InsertOne
from pymongo.errors import DuplicateKeyError, OperationFailure

from mongo_sessions.exceptions import MAX_ERROR_TEXT, SessionStoreError, describe_error
from mongo_sessions.operation import mongo_operation
from mongo_sessions.redaction import hash_session_key

KEY = "leakcheck0123456789leakcheck0123"
DATA = "secret-session-data-" + "x" * 5000
# Generous: the message's own text plus a bounded errmsg, never the data's 5000 characters.
BOUND = 600


def assert_clean(text: str) -> None:
    assert KEY not in text
    assert "secret-session-data" not in text
    assert "full error" not in text
    assert len(text) < BOUND, text


@pytest.mark.parametrize("session_key", [KEY, None])
def test_a_bulk_write_error_says_how_many_and_which_codes(
    sessions_collection: Any, session_key: str | None
) -> None:
    """A refused write in a bulk_write: the count of write errors and their codes only."""
    sessions_collection.insert_one({"_id": KEY, "data": DATA})
    with pytest.raises(SessionStoreError) as raised, mongo_operation("save", session_key):
        sessions_collection.bulk_write(
            [InsertOne({"_id": KEY, "data": DATA}), InsertOne({"_id": KEY, "data": DATA})],
            ordered=False,
        )
    text = str(raised.value)
    assert_clean(text)
    assert "BulkWriteError: 2 write error(s) (code 11000)" in text
    # The driver error (its text holds the documents) is not chained for log handlers.
    assert raised.value.__cause__ is None


@pytest.mark.parametrize("session_key", [KEY, None])
def test_a_server_error_gives_class_code_and_a_key_free_errmsg(
    sessions_collection: Any, session_key: str | None
) -> None:
    """A duplicate key (keyValue and the errmsg's "dup key" hold the key): neither is quoted."""
    sessions_collection.insert_one({"_id": KEY, "data": DATA})
    with pytest.raises(SessionStoreError) as raised, mongo_operation("create", session_key):
        sessions_collection.insert_one({"_id": KEY, "data": DATA})
    text = str(raised.value)
    assert_clean(text)
    assert "MongoDB refused it (code 11000): DuplicateKeyError (code 11000" in text
    # Log handlers print the chained cause in full: it is short and clean too,
    # and keeps its class and code.
    cause = raised.value.__cause__
    if cause is not None:
        assert isinstance(cause, DuplicateKeyError) and cause.code == 11000
        assert_clean(str(cause))


def test_an_index_creation_failure_is_described_without_the_full_reply(
    sessions_collection: Any,
) -> None:
    """The automatic index creation's warning describes its error the same way."""
    from mongo_sessions import indexes

    sessions_collection.insert_one({"_id": KEY, "data": DATA})
    with pytest.raises(DuplicateKeyError) as raised:
        sessions_collection.insert_one({"_id": KEY, "data": DATA})
    assert_clean(indexes._describe(raised.value))


def test_a_long_errmsg_is_cut_and_the_key_redacted() -> None:
    error = OperationFailure("e" * 10_000, 2, {"errmsg": "e" * 10_000, "code": 2})
    text = describe_error(error)
    assert len(text) < MAX_ERROR_TEXT + 100
    assert "(10,000 characters)" in text
    assert f"<session {hash_session_key(KEY)}>" in describe_error(
        OperationFailure(f"no {KEY}", 2, {"errmsg": f"no {KEY}", "code": 2}), KEY
    )
