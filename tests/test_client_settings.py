"""How the settings become clients: one resolver for the checks and the run time.

``MONGO_CLIENT`` is resolved by one function that ``manage.py check`` and the
connection share; the async twin of a client given in ``MONGO_CLIENT`` comes
from ``MONGO_SESSIONS_ASYNC_CLIENT`` (pymongo has no public way to copy a
client's options); a configuration ``check`` accepts never makes
``describe_connection()`` raise; a driver refusal at resolve time is an
``ImproperlyConfigured`` naming the setting, without the password.
"""

from __future__ import annotations

import asyncio
import traceback
from typing import Any

import pymongo
import pytest
from django.core.exceptions import ImproperlyConfigured

from mongo_sessions import connection
from mongo_sessions.checks import check_settings
from mongo_sessions.operation import mongo_operation
from mongo_sessions.session import SessionStore
from tests.support import OTHER_DB, requires_async_api

PASSWORD = "s3cret-Pw"


def full_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


# --- one resolver of MONGO_CLIENT ------------------------------------------------


@pytest.mark.parametrize(
    ("value", "check_id"),
    [
        (42, "mongo_sessions.E001"),
        (pymongo.AsyncMongoClient, "mongo_sessions.E001"),
        ("tests.nowhere.client", "mongo_sessions.E002"),
        ("tests.settings.SECRET_KEY", "mongo_sessions.E002"),
    ],
)
def test_check_and_run_time_reject_a_mongo_client_alike(
    settings: Any, no_url: None, value: Any, check_id: str
) -> None:
    settings.MONGO_CLIENT = value
    [message] = check_settings()
    assert message.id == check_id
    with pytest.raises(ImproperlyConfigured) as raised:
        SessionStore("u" * 32).load()
    # The same words at run time as in the check, with the prefix, the id and the hint.
    assert str(raised.value) == (
        f"mongo_sessions: {message.msg.rstrip('.')} ({check_id}). {message.hint}"
    )


# --- the async twin of a user's client ---------------------------------------------


def async_client_for_tests() -> pymongo.AsyncMongoClient[dict[str, Any]]:
    """MONGO_SESSIONS_ASYNC_CLIENT of the tests: options of its own, to be told apart."""
    return pymongo.AsyncMongoClient(
        async_client_for_tests.url,  # type: ignore[attr-defined]
        serverSelectionTimeoutMS=5000,
        appname="shop-async",
        maxPoolSize=3,
    )


@requires_async_api
async def test_the_async_twin_of_a_users_client_comes_from_mongo_sessions_async_client(
    settings: Any, user_client: Any, mongo_url: str, mongo_client: Any, no_url: None
) -> None:
    async_client_for_tests.url = mongo_url  # type: ignore[attr-defined]
    settings.MONGO_CLIENT = user_client
    settings.MONGO_DB_NAME = OTHER_DB
    settings.MONGO_SESSIONS_ASYNC_CLIENT = f"{__name__}.async_client_for_tests"
    assert check_settings() == []
    session = SessionStore()
    await session.aset("cart", ["apple"])
    await session.asave()
    assert await SessionStore(session.session_key).aget("cart") == ["apple"]
    stored = mongo_client[OTHER_DB][settings.MONGO_SESSIONS_COLLECTION]
    assert stored.find_one({"_id": session.session_key}) is not None
    with mongo_operation("test"):
        collection = await connection.aget_collection()
    options = collection.database.client.options
    # The function's own options, not a copy of the sync client's (appname "shop").
    assert options.pool_options.appname == "shop-async"
    assert options.pool_options.max_pool_size == 3
    # The sync side still uses the user's client, which the package never closes.
    assert connection.get_target().client is user_client
    connection.reset()
    user_client.admin.command("ping")


@requires_async_api
async def test_async_methods_with_mongo_client_alone_say_what_to_set(
    settings: Any, user_client: Any, no_url: None
) -> None:
    settings.MONGO_CLIENT = user_client
    settings.MONGO_DB_NAME = OTHER_DB
    with pytest.raises(ImproperlyConfigured, match="MONGO_SESSIONS_ASYNC_CLIENT"):
        await SessionStore("u" * 32).aload()
    # The sync methods are not concerned.
    session = SessionStore()
    session["a"] = 1
    session.save()
    assert SessionStore(session.session_key)["a"] == 1


@requires_async_api
def test_async_clients_built_from_the_url_get_the_client_options(settings: Any) -> None:
    settings.MONGO_SESSIONS_CLIENT_OPTIONS = {"maxPoolSize": 7, "appname": "shop"}

    async def options_of_this_loop() -> Any:
        assert await SessionStore("u" * 32).aload() == {}
        with mongo_operation("test"):
            collection = await connection.aget_collection()
        return collection.database.client.options

    options = asyncio.run(options_of_this_loop())
    assert options.pool_options.max_pool_size == 7
    assert options.pool_options.appname == "shop"
    assert options.server_selection_timeout == 5  # the package's default is kept


def not_a_function() -> None:
    pass


NOT_CALLABLE = 42


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (NOT_CALLABLE, "must be a function (or its dotted path), not int"),
        (f"{__name__}.NOT_CALLABLE", "not int"),
        ("tests.nowhere.async_client", "cannot be imported"),
        ("an AsyncMongoClient", "not AsyncMongoClient"),  # one serves one event loop only
    ],
)
def test_check_reports_an_unusable_mongo_sessions_async_client(
    settings: Any, user_client: Any, no_url: None, value: Any, expected: str
) -> None:
    settings.MONGO_CLIENT = user_client
    if value == "an AsyncMongoClient":
        value = pymongo.AsyncMongoClient("mongodb://127.0.0.1:9", connect=False)
    settings.MONGO_SESSIONS_ASYNC_CLIENT = value
    [message] = check_settings()
    assert message.id == "mongo_sessions.E020"
    assert expected in message.msg


def test_check_warns_about_mongo_sessions_async_client_without_mongo_client(
    settings: Any,
) -> None:
    settings.MONGO_SESSIONS_ASYNC_CLIENT = f"{__name__}.not_a_function"
    assert [m.id for m in check_settings()] == ["mongo_sessions.W003"]


# --- describe_connection() and errors at resolve time ------------------------------------


def test_describe_connection_never_resolves_a_mongodb_srv_name(settings: Any) -> None:
    # No DNS is needed to describe it: the lookup happens at the first operation.
    settings.MONGO_SESSIONS_URL = f"mongodb+srv://alice:{PASSWORD}@cluster0.example.invalid/shop"
    assert check_settings() == []
    description = connection.describe_connection()
    assert description == {
        "style": "url",
        "address": "cluster0.example.invalid",
        "database": "shop",
        "collection": settings.MONGO_SESSIONS_COLLECTION,
    }
    assert PASSWORD not in str(description)


@pytest.mark.parametrize(
    ("url_settings", "setting"),
    [
        # A password with a "/" that is not percent-encoded.
        (
            {"MONGO_SESSIONS_URL": "mongodb://alice:pa/ss@127.0.0.1:27017/shop"},
            "MONGO_SESSIONS_URL",
        ),
        (
            {
                "MONGO_SESSIONS_URL": f"mongodb+srv://alice:{PASSWORD}@cluster0.example.invalid:27017/"
            },
            "MONGO_SESSIONS_URL",
        ),
        (
            {
                "MONGO_SESSIONS_URL": f"mongodb://alice:{PASSWORD}@127.0.0.1:27017/shop",
                "MONGO_SESSIONS_CLIENT_OPTIONS": {"serverSelectionTimeoutMS": "abc"},
            },
            "MONGO_SESSIONS_CLIENT_OPTIONS",
        ),
        (
            {
                "MONGO_SESSIONS_URL": None,
                "MONGO_PORT": "27017",
                "MONGO_DB_USER": "alice",
                "MONGO_DB_PASSWORD": PASSWORD,
            },
            "MONGO_PORT",
        ),
    ],
)
def test_a_driver_refusal_at_resolve_time_names_the_setting_without_the_password(
    settings: Any, url_settings: dict[str, Any], setting: str
) -> None:
    for name, value in url_settings.items():
        setattr(settings, name, value)
    for attempt in (SessionStore("u" * 32).load, connection.describe_connection):
        with pytest.raises(ImproperlyConfigured) as raised:
            attempt()
        assert setting in str(raised.value)
        text = full_text(raised.value)
        assert PASSWORD not in text and "pa/ss" not in text


def test_the_package_clients_poll_the_server_every_500_ms() -> None:
    assert SessionStore("u" * 32).load() == {}
    options = connection.get_target().client.options
    assert options.server_monitoring_mode == "poll"
    assert options.heartbeat_frequency == 0.5


def test_options_in_the_url_win_over_the_package_defaults(settings: Any) -> None:
    url = settings.MONGO_SESSIONS_URL
    options = "appname=shop&heartbeatFrequencyMS=2000&serverMonitoringMode=stream"
    settings.MONGO_SESSIONS_URL = url + ("&" if "?" in url else "?") + options
    assert SessionStore("u" * 32).load() == {}
    options = connection.get_target().client.options
    assert options.pool_options.appname == "shop"
    assert options.heartbeat_frequency == 2
    assert options.server_monitoring_mode == "stream"
    assert options.server_selection_timeout == 5  # a default the URL does not set
    # MONGO_SESSIONS_CLIENT_OPTIONS wins over both.
    settings.MONGO_SESSIONS_CLIENT_OPTIONS = {"appname": "shop-2"}
    assert SessionStore("u" * 32).load() == {}
    assert connection.get_target().client.options.pool_options.appname == "shop-2"
