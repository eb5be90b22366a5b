"""manage.py mongo_sessions_setup: indexes, --check, --import-db and --migrate-seed."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timedelta, timezone
from io import StringIO
from typing import Any

import pytest
from bson import ObjectId
from django.contrib.sessions.backends.db import SessionStore as DbSessionStore
from django.core.management import call_command
from django.core.management.base import CommandError

from mongo_sessions import connection
from mongo_sessions.session import SessionStore
from tests.faults import FailCommand
from tests.servers import free_port
from tests.support import AllCommands, requires_async_api


def setup(*args: str) -> str:
    out = StringIO()
    call_command("mongo_sessions_setup", *args, stdout=out)
    return out.getvalue()


def index_specs(collection: Any) -> dict[str, Any]:
    return collection.index_information()


def test_creates_indexes_and_is_idempotent(sessions_collection: Any) -> None:
    first = setup()
    assert "created index expire_date_1" in first
    assert "created index user_id_1" in first
    specs = index_specs(sessions_collection)
    assert specs["expire_date_1"]["expireAfterSeconds"] == 0
    assert specs["user_id_1"]["sparse"] is True
    assert "nothing changed" in setup()


def test_check_only_reports(sessions_collection: Any) -> None:
    sessions_collection.insert_one({"_id": "x"})
    with pytest.raises(CommandError, match="2 index change"):
        setup("--check")
    assert set(index_specs(sessions_collection)) == {"_id_"}
    setup()
    assert "Indexes are as expected" in setup("--check")


def test_changes_a_ttl_index_with_other_seconds_in_place(sessions_collection: Any) -> None:
    sessions_collection.create_index("expire_date", expireAfterSeconds=3600, name="expire_date_1")
    output = setup()
    assert "changed index expire_date_1 in place with collMod" in output
    assert index_specs(sessions_collection)["expire_date_1"]["expireAfterSeconds"] == 0


def test_turns_a_plain_index_into_a_ttl_index(sessions_collection: Any) -> None:
    sessions_collection.create_index("expire_date", name="expire_date_plain")
    output = setup()
    # collMod or the bridge replacement: either way the command says which.
    assert "expire_date_plain" in output
    assert ("collMod" in output) or ("bridge" in output)
    ttl = [s for s in index_specs(sessions_collection).values() if "expireAfterSeconds" in s]
    assert len(ttl) == 1
    assert ttl[0]["expireAfterSeconds"] == 0


@pytest.fixture
def all_commands(settings: Any) -> AllCommands:
    listener = AllCommands()
    settings.MONGO_SESSIONS_CLIENT_OPTIONS = {"event_listeners": [listener]}
    return listener


def test_auto_index_off_sends_no_create_indexes(
    settings: Any, sessions_collection: Any, all_commands: AllCommands
) -> None:
    settings.MONGO_SESSIONS_AUTO_INDEX = False
    SessionStore().create()
    assert connection.wait_for_auto_index(30)  # nothing to do
    assert "createIndexes" not in all_commands.commands
    assert set(index_specs(sessions_collection)) == {"_id_"}


def test_auto_index_on_creates_them_once_per_process(
    sessions_collection: Any, all_commands: AllCommands
) -> None:
    for _ in range(3):
        SessionStore().create()
        connection.wait_for_auto_index(30)  # built in the background
    assert all_commands.commands.count("createIndexes") == 1
    assert "expire_date_1" in index_specs(sessions_collection)


@pytest.fixture(params=["signed", "document"])
def each_format(request: pytest.FixtureRequest, settings: Any) -> str:
    """The test runs with each MONGO_SESSIONS_FORMAT."""
    settings.MONGO_SESSIONS_FORMAT = request.param
    return str(request.param)


def assert_stored_in(format_name: str, stored: Any, session: dict[str, Any]) -> None:
    """``stored`` (a data field) is ``session`` in the format ``format_name``."""
    if format_name == "document":
        assert stored == session
    else:
        assert isinstance(stored, str) and SessionStore().decode(stored) == session


@pytest.mark.django_db
def test_import_db_copies_live_sessions_and_logs_nobody_out(
    each_format: str, sessions_collection: Any
) -> None:
    live = DbSessionStore()
    live.update({"_auth_user_id": "5", "cart": ["apple"]})
    live.save()
    expired = DbSessionStore()
    expired.set_expiry(-60)
    expired.save()
    output = setup("--import-db")
    assert "imported 1 session(s)" in output
    assert "1 expired or invalid skipped" in output
    # The same cookie now works with the MongoDB engine, and the user index knows it.
    assert SessionStore(live.session_key)["cart"] == ["apple"]
    document = sessions_collection.find_one({"_id": live.session_key})
    assert document["user_id"] == "5"
    assert_stored_in(each_format, document["data"], {"_auth_user_id": "5", "cart": ["apple"]})
    assert "0 session(s)" in setup("--import-db")  # re-running copies nothing twice
    assert "1 already present" in setup("--import-db")


def test_migrate_seed_converts_old_documents(
    each_format: str, sessions_collection: Any, settings: Any
) -> None:
    settings.MONGO_SESSIONS_TTL = 3600
    encoded = SessionStore().encode({"_auth_user_id": "9", "theme": "dark"})
    created = datetime.now(timezone.utc) - timedelta(minutes=10)
    # Longer than the 2 h old document's age: the TTL monitor must not race the command.
    sessions_collection.create_index("creation_date", expireAfterSeconds=3 * 3600)
    sessions_collection.insert_many(
        [
            {"_id": ObjectId(), "session_key": "s" * 32, "session_data": encoded,
             "creation_date": created},
            {"_id": ObjectId(), "session_key": "o" * 32, "session_data": encoded,
             "creation_date": created - timedelta(hours=2)},
        ]
    )  # fmt: skip
    output = setup("--migrate-seed")
    assert "converted 1 django-mongo-sessions 0.x session(s)" in output
    assert "1 expired skipped" in output
    assert "dropped index creation_date_1" in output
    assert SessionStore("s" * 32)["theme"] == "dark"
    document = sessions_collection.find_one({"_id": "s" * 32})
    assert document["user_id"] == "9"
    assert_stored_in(each_format, document["data"], {"_auth_user_id": "9", "theme": "dark"})
    assert abs(document["expire_date"] - (created + timedelta(hours=1))) < timedelta(seconds=1)
    assert sessions_collection.count_documents({"session_key": {"$exists": True}}) == 0
    assert "creation_date_1" not in index_specs(sessions_collection)


def test_bridge_replacement_when_collmod_is_refused(
    sessions_collection: Any, settings: Any, mongo_client: Any
) -> None:
    """Without collMod, a bridge TTL index covers the swap: expiry never stops."""
    app_name = f"setup-{uuid.uuid4().hex[:8]}"
    settings.MONGO_SESSIONS_CLIENT_OPTIONS = {"appname": app_name}
    failpoint = FailCommand(mongo_client, app_name)
    if (reason := failpoint.refusal()) is not None:
        pytest.skip(reason)
    sessions_collection.create_index("expire_date", expireAfterSeconds=3600, name="expire_date_1")
    failpoint.arm(["collMod"], errorCode=13)  # as for an account without collMod rights
    try:
        output = setup()
    finally:
        failpoint.off()
    assert "replaced index expire_date_1" in output
    assert "through a bridge TTL index" in output
    specs = index_specs(sessions_collection)
    assert specs["expire_date_1"]["expireAfterSeconds"] == 0
    assert "expire_date_1_bridge" not in specs


def test_auto_index_conflict_is_logged_and_does_not_cost_the_other_index(
    sessions_collection: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # An expire_date index with other options (as an older setup may have left).
    sessions_collection.create_index("expire_date", expireAfterSeconds=3600, name="expire_date_1")
    with caplog.at_level(logging.WARNING, logger="mongo_sessions"):
        session = SessionStore()
        session.create()
        assert not connection.wait_for_auto_index(30)  # built in the background: it fails
    assert "mongo_sessions_setup" in caplog.text
    specs = index_specs(sessions_collection)
    assert "user_id_1" in specs
    # Left for the command to repair; sessions work meanwhile.
    assert specs["expire_date_1"]["expireAfterSeconds"] == 3600
    assert SessionStore(session.session_key).exists(session.session_key)


@requires_async_api
async def test_async_auto_index_conflict_does_not_cost_the_other_index(
    sessions_collection: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sessions_collection.create_index("expire_date", expireAfterSeconds=3600, name="expire_date_1")
    with caplog.at_level(logging.WARNING, logger="mongo_sessions"):
        await SessionStore().acreate()
        assert not connection.wait_for_auto_index(30)  # built in the background: it fails
    assert "mongo_sessions_setup" in caplog.text
    assert "user_id_1" in index_specs(sessions_collection)


# --- a server that is not there ---------------------------------------------------------

PASSWORD = "unreachable-pw-7f3a"


@pytest.mark.parametrize(
    "mode", [[], ["--check"], ["--import-db"], ["--migrate-seed"], ["--convert"]]
)
def test_unreachable_server_fails_within_the_timeout_not_the_index_timeout(
    settings: Any, mode: list[str]
) -> None:
    port = free_port()  # nothing listens on it
    settings.MONGO_SESSIONS_URL = f"mongodb://admin:{PASSWORD}@127.0.0.1:{port}/myproject"
    settings.MONGO_SESSIONS_TIMEOUT = 1
    out = StringIO()

    started = time.monotonic()
    with pytest.raises(CommandError) as raised:
        # --timeout stays the default 600 s: it bounds index builds, not reaching the server.
        call_command("mongo_sessions_setup", *mode, stdout=out)
    elapsed = time.monotonic() - started

    # A bound, not a speed target: the old code waited for the whole --timeout.
    assert elapsed < 1 + 10, f"took {elapsed:.1f} s"
    message = str(raised.value)
    assert f"127.0.0.1:{port}" in message
    assert "could not be reached within MONGO_SESSIONS_TIMEOUT (1.0 s)" in message
    assert "MONGO_SESSIONS_URL" in message
    assert PASSWORD not in message and PASSWORD not in out.getvalue()
