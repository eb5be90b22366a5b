"""Collections that already exist: unique indexes other than _id (django-mongo-sessions
0.x's unique, non-sparse session_key index above all) are found, reported and removed,
and a duplicate-key error on one is a clear error naming the index, never a key collision.
"""

from __future__ import annotations

import traceback
from datetime import datetime, timedelta, timezone
from io import StringIO
from typing import Any

import pytest
from bson import ObjectId
from django.contrib.sessions.backends.db import SessionStore as DbSessionStore
from django.core.management import call_command
from django.core.management.base import CommandError

from mongo_sessions.checks import check_server
from mongo_sessions.exceptions import SessionStoreError
from mongo_sessions.migration import import_db_sessions
from mongo_sessions.session import SessionStore
from mongo_sessions.testing import CommandCounter
from tests.support import requires_async_api

SEED_INDEX = "session_key_1"


def setup(*args: str) -> str:
    out = StringIO()
    call_command("mongo_sessions_setup", *args, stdout=out)
    return out.getvalue()


def with_seed_collection(collection: Any, sessions: int = 0) -> list[str]:
    """Give the collection what django-mongo-sessions 0.x left: its two indexes and documents."""
    collection.create_index("session_key", unique=True)  # unique, not sparse
    collection.create_index("creation_date", expireAfterSeconds=3 * 3600)
    keys = [f"seed{i}" + "x" * 28 for i in range(sessions)]
    encoded = SessionStore().encode({"theme": "dark"})
    for key in keys:
        collection.insert_one(
            {
                "_id": ObjectId(),
                "session_key": key,
                "session_data": encoded,
                "creation_date": datetime.now(timezone.utc) - timedelta(minutes=5),
            }
        )
    return keys


def full_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


def test_seed_index_is_a_clear_error_not_a_key_collision(
    sessions_collection: Any, command_counter: CommandCounter
) -> None:
    with_seed_collection(sessions_collection)
    first = SessionStore()
    first.create()  # the one document with session_key null
    command_counter.commands.clear()
    second = SessionStore()
    with pytest.raises(SessionStoreError) as raised:
        second.create()
    message = str(raised.value)
    assert "session create failed" in message
    assert SEED_INDEX in message and "mongo_sessions_setup" in message
    assert "no unique key" not in message
    # One insert, not ten: a duplicate on another index is no reason to pick another key.
    assert command_counter.commands.count("insert") == 1
    assert first.session_key is not None and first.session_key not in full_text(raised.value)
    assert second.session_key is None or second.session_key not in full_text(raised.value)


@requires_async_api
async def test_seed_index_is_a_clear_error_from_async_code(sessions_collection: Any) -> None:
    with_seed_collection(sessions_collection)
    await SessionStore().acreate()
    with pytest.raises(SessionStoreError, match=SEED_INDEX):
        await SessionStore().acreate()


def test_setup_check_reports_the_seed_index(sessions_collection: Any) -> None:
    setup()
    with_seed_collection(sessions_collection)
    out = StringIO()
    with pytest.raises(CommandError, match="1 index change"):
        call_command("mongo_sessions_setup", "--check", stdout=out)
    output = out.getvalue()
    assert f"found unique index {SEED_INDEX} on session_key" in output
    assert "django-mongo-sessions 0.x" in output
    assert f"would drop unique index {SEED_INDEX}" in output
    assert SEED_INDEX in sessions_collection.index_information()


def test_setup_drops_the_seed_index_and_sessions_work(sessions_collection: Any) -> None:
    with_seed_collection(sessions_collection)
    output = setup()
    assert f"found unique index {SEED_INDEX}" in output
    assert f"dropped unique index {SEED_INDEX}" in output
    assert SEED_INDEX not in sessions_collection.index_information()
    for _ in range(3):
        SessionStore().create()
    assert sessions_collection.count_documents({"data": {"$exists": True}}) == 3
    assert "Indexes are as expected" in setup("--check")


def test_migrate_seed_then_three_new_sessions(sessions_collection: Any) -> None:
    """The issue's case: after --migrate-seed, 0 of 3 sessions could be created."""
    keys = with_seed_collection(sessions_collection, sessions=3)
    output = setup("--migrate-seed")
    assert f"found unique index {SEED_INDEX}" in output
    assert f"dropped unique index {SEED_INDEX}" in output
    assert "converted 3 django-mongo-sessions 0.x session(s)" in output
    assert all(SessionStore(key)["theme"] == "dark" for key in keys)
    created = []
    for _ in range(3):
        store = SessionStore()
        store["visits"] = 1
        store.save()
        created.append(store.session_key)
    assert all(SessionStore(key)["visits"] == 1 for key in created)
    assert set(sessions_collection.index_information()) == {"_id_", "expire_date_1", "user_id_1"}


def test_deploy_check_reports_the_seed_index(sessions_collection: Any) -> None:
    setup()
    with_seed_collection(sessions_collection)
    messages = check_server()
    ids = [m.id for m in messages]
    assert "mongo_sessions.E103" in ids
    blocking = messages[ids.index("mongo_sessions.E103")]
    assert SEED_INDEX in blocking.msg and "0.x" in blocking.msg
    assert "mongo_sessions_setup" in (blocking.hint or "")
    assert "mongo_sessions.E102" not in ids  # not reported twice
    setup()
    assert "mongo_sessions.E103" not in [m.id for m in check_server()]


@pytest.mark.parametrize(
    ("key", "options", "blocks"),
    [
        ([("user_id", 1)], {"unique": True, "sparse": True}, True),
        ([("created_at", 1)], {"unique": True}, True),
        ([("tenant", 1), ("session_key", 1)], {"unique": True}, True),
        ([("_id", 1), ("user_id", 1)], {"unique": True}, False),
        ([("session_key", 1)], {"unique": True, "sparse": True}, False),
        ([("user_id", 1)], {}, False),
    ],
    ids=[
        "unique user_id",
        "unique created_at",
        "compound foreign fields",
        "compound with _id",
        "sparse on a field sessions lack",
        "not unique",
    ],
)
def test_which_unique_indexes_block(
    sessions_collection: Any, key: list[tuple[str, int]], options: dict[str, Any], blocks: bool
) -> None:
    setup()
    name = sessions_collection.create_index(key, name="their_index", **options)
    ids = [m.id for m in check_server()]
    assert ("mongo_sessions.E103" in ids) is blocks
    output = setup()
    assert ("dropped unique index their_index" in output) is blocks
    assert (name in sessions_collection.index_information()) is not blocks


def test_unique_user_index_is_replaced_by_the_expected_one(sessions_collection: Any) -> None:
    sessions_collection.create_index("user_id", unique=True, sparse=True, name="user_id_1")
    output = setup()
    assert "dropped unique index user_id_1 on user_id" in output
    assert "created index user_id_1" in output
    spec = sessions_collection.index_information()["user_id_1"]
    assert spec.get("unique") is not True and spec["sparse"] is True


def test_unique_expire_date_index_is_replaced_without_a_gap(sessions_collection: Any) -> None:
    sessions_collection.create_index("expire_date", unique=True, name="expire_date_1")
    assert "mongo_sessions.E103" in [m.id for m in check_server()]
    output = setup()
    assert "replaced index expire_date_1 with expire_date_1" in output
    assert "bridge" in output
    spec = sessions_collection.index_information()["expire_date_1"]
    assert spec.get("unique") is not True and spec["expireAfterSeconds"] == 0
    assert check_server() == []


@pytest.mark.django_db
def test_a_second_login_of_a_user_refused_by_a_unique_index_names_it(
    sessions_collection: Any,
) -> None:
    sessions_collection.create_index("user_id", unique=True, sparse=True, name="one_per_user")
    first, second = SessionStore(), SessionStore()
    for store in (first, second):
        store["visits"] = 1
        store.save()
    first["_auth_user_id"] = "7"
    first.save()
    second["_auth_user_id"] = "7"
    with pytest.raises(SessionStoreError) as raised:
        second.save()  # an update: never an UpdateError, never a collision
    assert "one_per_user" in str(raised.value) and "mongo_sessions_setup" in str(raised.value)
    assert second.session_key and second.session_key not in full_text(raised.value)
    assert SessionStore(second.session_key)["visits"] == 1


@pytest.mark.django_db
def test_import_never_counts_a_blocked_copy_as_already_present(sessions_collection: Any) -> None:
    for _ in range(2):
        store = DbSessionStore()
        store["visits"] = 1
        store.save()
    sessions_collection.create_index("session_key", unique=True)
    with pytest.raises(SessionStoreError, match=SEED_INDEX):
        import_db_sessions(sessions_collection)


@requires_async_api
async def test_a_refused_update_names_the_index_from_async_code(sessions_collection: Any) -> None:
    sessions_collection.create_index("user_id", unique=True, sparse=True, name="one_per_user")
    first, second = SessionStore(), SessionStore()
    for store in (first, second):
        await store.aset("_auth_user_id", "7" if store is first else "8")
        await store.asave()
    await second.aset("_auth_user_id", "7")
    with pytest.raises(SessionStoreError, match="one_per_user") as raised:
        await second.asave()
    assert "mongo_sessions_setup" in str(raised.value)
    assert second.session_key and second.session_key not in full_text(raised.value)
