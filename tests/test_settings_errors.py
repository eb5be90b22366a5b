"""Settings that cannot work: reported by `check` under a stable id, and at run time an
ImproperlyConfigured naming the setting, never a raw driver error, never a password.
`check --deploy` never crashes: DNS failures, refused credentials and missing privileges
each get their own id.
"""

from __future__ import annotations

import traceback
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_plus

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from pymongo import AsyncMongoClient, MongoClient
from pymongo.database import Database

from mongo_sessions.checks import check_server, check_settings
from mongo_sessions.session import SessionStore
from tests.servers import AuthServer, auth_mongo_server
from tests.support import requires_async_api

PASSWORD = f"s3cr/et:{uuid.uuid4().hex[:10]}"  # unescaped "/" and ":" on purpose


def ids(messages: list[Any]) -> list[str]:
    return [m.id for m in messages]


def full_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


def server_url(mongo_url: str, path: str = "db") -> str:
    return mongo_url.rstrip("/") + "/" + path


CASES: list[tuple[str, dict[str, Any], str, str]] = [
    # (name, settings, check id, setting named at run time); "{url}" is the test server.
    ("collection a..b", {"MONGO_SESSIONS_COLLECTION": "a..b"}, "E008", "MONGO_SESSIONS_COLLECTION"),
    (
        "collection ending with .",
        {"MONGO_SESSIONS_COLLECTION": "sessions."},
        "E008",
        "MONGO_SESSIONS_COLLECTION",
    ),
    (
        "collection starting with .",
        {"MONGO_SESSIONS_COLLECTION": ".sessions"},
        "E008",
        "MONGO_SESSIONS_COLLECTION",
    ),
    (
        "namespace over 255 bytes",
        {"MONGO_SESSIONS_COLLECTION": "s" * 250},
        "E008",
        "MONGO_SESSIONS_COLLECTION",
    ),
    (
        "collection not a string",
        {"MONGO_SESSIONS_COLLECTION": 5},
        "E008",
        "MONGO_SESSIONS_COLLECTION",
    ),
    (
        "database name over 63 bytes",
        {"MONGO_SESSIONS_URL": "{url}/", "MONGO_DB_NAME": "\u00e9" * 32},
        "E007",
        "MONGO_DB_NAME",
    ),
    (
        "database name with a dot",
        {"MONGO_SESSIONS_URL": "{url}/", "MONGO_DB_NAME": "my.db"},
        "E007",
        "MONGO_DB_NAME",
    ),
    (
        "database in the URL path",
        {"MONGO_SESSIONS_URL": "{url}/" + "d" * 70},
        "E004",
        "MONGO_SESSIONS_URL",
    ),
    (
        "password with an unescaped /",
        {"MONGO_SESSIONS_URL": "mongodb://app:" + PASSWORD + "@127.0.0.1:1/db"},
        "E016",
        "MONGO_SESSIONS_URL",
    ),
    (
        "password with an unescaped @",
        {"MONGO_SESSIONS_URL": "mongodb://app:p@ss" + PASSWORD[4:10] + "@127.0.0.1:1/db"},
        "E016",
        "MONGO_SESSIONS_URL",
    ),
    (
        "password with a bare %",
        {"MONGO_SESSIONS_URL": "mongodb://app:100%" + PASSWORD[4:10] + "@127.0.0.1:1/db"},
        "E016",
        "MONGO_SESSIONS_URL",
    ),
    (
        "URL option of the wrong type",
        {"MONGO_SESSIONS_URL": "{url}/db?serverSelectionTimeoutMS=abc"},
        "E004",
        "MONGO_SESSIONS_URL",
    ),
    ("not a MongoDB URL", {"MONGO_SESSIONS_URL": "postgres://h/db"}, "E004", "MONGO_SESSIONS_URL"),
    (
        "mongodb+srv with a port",
        {"MONGO_SESSIONS_URL": "mongodb+srv://cluster0.example.invalid:27017/db"},
        "E004",
        "MONGO_SESSIONS_URL",
    ),
    (
        "client option of the wrong type",
        {"MONGO_SESSIONS_CLIENT_OPTIONS": {"serverSelectionTimeoutMS": "abc"}},
        "E010",
        "MONGO_SESSIONS_CLIENT_OPTIONS",
    ),
    (
        "unknown client option",
        {"MONGO_SESSIONS_CLIENT_OPTIONS": {"serverSelectionTimeout": 5}},
        "E010",
        "MONGO_SESSIONS_CLIENT_OPTIONS",
    ),
    (
        "tls=maybe in the URL",
        {"MONGO_SESSIONS_URL": "{url}/db?tls=maybe"},
        "E015",
        "MONGO_SESSIONS_URL",
    ),
    (
        "tls maybe in the client options",
        {"MONGO_SESSIONS_CLIENT_OPTIONS": {"tls": "maybe"}},
        "E015",
        "MONGO_SESSIONS_CLIENT_OPTIONS",
    ),
    (
        "missing CA file",
        {"MONGO_SESSIONS_URL": "{url}/db?tls=true&tlsCAFile=/nonexistent/ca.pem"},
        "E015",
        "MONGO_SESSIONS_URL",
    ),
    (
        "TLS file without tls",
        {
            "MONGO_SESSIONS_URL": "{url}/db?tls=false",
            "MONGO_SESSIONS_CLIENT_OPTIONS": {"tlsCAFile": __file__},
        },
        "E015",
        "MONGO_SESSIONS_CLIENT_OPTIONS",
    ),
    (
        "conflicting tlsInsecure",
        {"MONGO_SESSIONS_URL": "{url}/db?tlsInsecure=true&tlsAllowInvalidCertificates=true"},
        "E015",
        "MONGO_SESSIONS_URL",
    ),
    (
        "dot in the URL's database",
        {"MONGO_SESSIONS_URL": "{url}/my.project"},
        "E004",
        "MONGO_SESSIONS_URL",
    ),
    ("empty URL", {"MONGO_SESSIONS_URL": ""}, "E004", "MONGO_SESSIONS_URL"),
    ("w=0 in the URL", {"MONGO_SESSIONS_URL": "{url}/db?w=0"}, "E019", "MONGO_SESSIONS_URL"),
    (
        "w 0 in the client options",
        {"MONGO_SESSIONS_CLIENT_OPTIONS": {"w": 0}},
        "E019",
        "MONGO_SESSIONS_CLIENT_OPTIONS",
    ),
    (
        "w 0 in the host style",
        {"MONGO_SESSIONS_URL": None, "MONGO_SESSIONS_CLIENT_OPTIONS": {"W": 0}},
        "E019",
        "MONGO_SESSIONS_CLIENT_OPTIONS",
    ),
    ("timeout as text", {"MONGO_SESSIONS_TIMEOUT": "5"}, "E013", "MONGO_SESSIONS_TIMEOUT"),
    ("negative timeout", {"MONGO_SESSIONS_TIMEOUT": -1}, "E013", "MONGO_SESSIONS_TIMEOUT"),
    ("TTL as text", {"MONGO_SESSIONS_TTL": "3600"}, "E009", "MONGO_SESSIONS_TTL"),
    *[
        (
            f"compress min length {value!r}",
            {"MONGO_SESSIONS_COMPRESS_MIN_LENGTH": value},
            "E052",
            "MONGO_SESSIONS_COMPRESS_MIN_LENGTH",
        )
        for value in ("512", -1, True, 512.0, None)
    ],
    (
        "auto index as text",
        {"MONGO_SESSIONS_AUTO_INDEX": "no"},
        "E014",
        "MONGO_SESSIONS_AUTO_INDEX",
    ),
    (
        "password not a string",
        {"MONGO_SESSIONS_URL": None, "MONGO_DB_USER": "app", "MONGO_DB_PASSWORD": 1234},
        "E017",
        "MONGO_DB_PASSWORD",
    ),
    (
        "port as text",
        {"MONGO_SESSIONS_URL": None, "MONGO_PORT": "27017"},
        "E005",
        "MONGO_PORT",
    ),
    (
        "password without user",
        {"MONGO_SESSIONS_URL": None, "MONGO_DB_PASSWORD": PASSWORD},
        "E006",
        "MONGO_DB_USER",
    ),
]


def apply(settings: Any, mongo_url: str, values: dict[str, Any]) -> None:
    for name, value in values.items():
        if isinstance(value, str) and "{url}" in value:
            value = value.replace("{url}", mongo_url.rstrip("/"))
        setattr(settings, name, value)


@pytest.mark.parametrize(
    ("values", "check_id", "setting"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_check_reports_it_and_run_time_names_the_setting(
    settings: Any,
    mongo_url: str,
    sessions_collection: Any,
    values: dict[str, Any],
    check_id: str,
    setting: str,
) -> None:
    apply(settings, mongo_url, values)
    messages = check_settings()
    assert f"mongo_sessions.{check_id}" in ids(messages)
    for message in messages:
        assert message.hint
        assert PASSWORD not in f"{message.msg} {message.hint}"
        assert quote_plus(PASSWORD) not in f"{message.msg} {message.hint}"

    store = SessionStore()
    store["visits"] = 1
    with pytest.raises(ImproperlyConfigured) as raised:
        store.save()
    text = full_text(raised.value)
    assert setting in str(raised.value)
    assert f"mongo_sessions.{check_id}" in str(raised.value)
    assert PASSWORD not in text and PASSWORD[5:] not in text
    # Nothing reached the server (no plain-text connection for tls=maybe).
    assert sessions_collection.count_documents({}) == 0


@requires_async_api
async def test_run_time_error_from_async_code(settings: Any, mongo_url: str) -> None:
    settings.MONGO_SESSIONS_URL = server_url(mongo_url, "db?tls=maybe")
    with pytest.raises(ImproperlyConfigured, match=r"mongo_sessions\.E015"):
        await SessionStore().acreate()


def test_an_empty_url_says_what_to_do(settings: Any) -> None:
    settings.MONGO_SESSIONS_URL = ""  # os.environ.get("MONGO_URL", "")
    [message] = check_settings()
    assert message.id == "mongo_sessions.E004"
    assert "empty" in message.msg
    assert "unset" in (message.hint or "") and "mongodb://" in (message.hint or "")


def test_a_dot_in_the_urls_database_is_named(settings: Any) -> None:
    settings.MONGO_SESSIONS_URL = "mongodb://127.0.0.1:1/my.project"
    [message] = check_settings()
    assert message.id == "mongo_sessions.E004"
    assert "'my.project'" in message.msg and "'.'" in message.msg


def test_w_majority_and_w_1_pass(settings: Any) -> None:
    settings.MONGO_SESSIONS_URL = "mongodb://127.0.0.1:1/db?w=0"
    settings.MONGO_SESSIONS_CLIENT_OPTIONS = {"w": 1}  # keyword arguments win over the URL
    assert check_settings() == []
    settings.MONGO_SESSIONS_CLIENT_OPTIONS = {"w": "majority"}
    settings.MONGO_SESSIONS_URL = "mongodb+srv://cluster0.example.invalid/db"
    assert check_settings() == []


@pytest.mark.parametrize("form", ["client", "database"])
def test_a_given_client_with_w0_is_refused_before_any_write(
    settings: Any, mongo_url: str, sessions_collection: Any, form: str
) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url, w=0, connect=False)
    try:
        settings.MONGO_SESSIONS_URL = None
        settings.MONGO_CLIENT = client if form == "client" else client["w0"]
        assert ids(check_settings()) == ["mongo_sessions.E019"]
        store = SessionStore()
        store["visits"] = 1
        with pytest.raises(ImproperlyConfigured) as raised:
            store.save()
        text = str(raised.value)
        assert text.startswith("mongo_sessions: MONGO_CLIENT ")
        assert "(mongo_sessions.E019)" in text and "w=0" in text
        # Never changed, never closed: the user's client still works.
        assert client.write_concern.acknowledged is False
        client.admin.command("ping")
    finally:
        client.close()
    assert sessions_collection.count_documents({}) == 0


@requires_async_api
async def test_an_async_client_with_w0_is_refused_before_any_write(
    settings: Any, mongo_url: str, mongo_client: Any
) -> None:
    settings.MONGO_SESSIONS_URL = None
    settings.MONGO_CLIENT = mongo_client
    settings.MONGO_SESSIONS_ASYNC_CLIENT = lambda: AsyncMongoClient(mongo_url, w=0)
    store = SessionStore()
    store["visits"] = 1
    with pytest.raises(ImproperlyConfigured) as raised:
        await store.asave()
    assert str(raised.value).startswith("mongo_sessions: MONGO_SESSIONS_ASYNC_CLIENT ")
    assert "(mongo_sessions.E019)" in str(raised.value)


BATCH_CASES = [
    ("MONGO_SESSIONS_BATCH_SIZE", 0),
    ("MONGO_SESSIONS_BATCH_SIZE", -1),
    ("MONGO_SESSIONS_BATCH_SIZE", "abc"),
    ("MONGO_SESSIONS_BATCH_SIZE", True),
    ("MONGO_SESSIONS_BATCH_SIZE", 10.5),
    ("MONGO_SESSIONS_BATCH_TIMEOUT", 0),
    ("MONGO_SESSIONS_BATCH_TIMEOUT", -1),
    ("MONGO_SESSIONS_BATCH_TIMEOUT", "abc"),
    ("MONGO_SESSIONS_BATCH_TIMEOUT", True),
    ("MONGO_SESSIONS_BATCH_TIMEOUT", float("inf")),
]


@pytest.mark.parametrize(("name", "value"), BATCH_CASES)
def test_batch_settings_are_checked_and_named_the_same_at_run_time(
    settings: Any, name: str, value: Any
) -> None:
    setattr(settings, name, value)
    [message] = check_settings()
    assert message.id == "mongo_sessions.E018"
    assert name in message.msg and message.hint
    with pytest.raises(ImproperlyConfigured) as raised:
        SessionStore.clear_expired()
    assert str(raised.value) == (
        f"mongo_sessions: {message.msg.rstrip('.')} (mongo_sessions.E018). {message.hint}"
    )


@requires_async_api
async def test_batch_settings_from_async_code(settings: Any) -> None:
    settings.MONGO_SESSIONS_BATCH_SIZE = 0
    with pytest.raises(ImproperlyConfigured, match=r"^mongo_sessions: .*\(mongo_sessions\.E018\)"):
        await SessionStore.aclear_expired()


CLIENT_CASES = [
    # (settings, check id, start of the run-time text)
    ({"MONGO_CLIENT": 42}, "E001", "mongo_sessions: MONGO_CLIENT is an int (mongo_sessions.E001)."),
    (
        {"MONGO_CLIENT": "mongodb://127.0.0.1:1/myproject"},
        "E002",
        "mongo_sessions: MONGO_CLIENT 'mongodb://127.0.0.1:1/myproject' cannot be imported",
    ),
    (
        {"MONGO_CLIENT": "tests.settings.SECRET_KEY"},
        "E002",
        "mongo_sessions: MONGO_CLIENT 'tests.settings.SECRET_KEY' points to a str,",
    ),
    (
        {"MONGO_CLIENT": "{client}", "MONGO_SESSIONS_ASYNC_CLIENT": "tests.nowhere.factory"},
        "E020",
        "mongo_sessions: MONGO_SESSIONS_ASYNC_CLIENT 'tests.nowhere.factory' cannot be imported",
    ),
]


@pytest.mark.parametrize(("values", "check_id", "start"), CLIENT_CASES)
def test_client_setting_errors_carry_the_prefix_and_the_id(
    settings: Any, mongo_client: Any, values: dict[str, Any], check_id: str, start: str
) -> None:
    settings.MONGO_SESSIONS_URL = None
    for name, value in values.items():
        setattr(settings, name, mongo_client if value == "{client}" else value)
    [message] = check_settings()
    assert message.id == f"mongo_sessions.{check_id}"
    with pytest.raises(ImproperlyConfigured) as raised:
        if check_id == "E020":
            from mongo_sessions.connection import get_target

            get_target()
        else:
            SessionStore().save()
    text = str(raised.value)
    assert text.startswith(start), text
    assert f"(mongo_sessions.{check_id}). {message.hint}" in text


def test_a_url_in_mongo_client_points_to_mongo_sessions_url(settings: Any) -> None:
    settings.MONGO_SESSIONS_URL = None
    settings.MONGO_CLIENT = "mongodb://127.0.0.1:1/myproject"
    [message] = check_settings()
    assert message.id == "mongo_sessions.E002"
    assert "MONGO_SESSIONS_URL" in (message.hint or "")


def test_alias_errors_carry_the_prefix_and_the_id(settings: Any) -> None:
    settings.MONGO_SESSIONS_URL = None
    settings.MONGO_SESSIONS_DATABASE_ALIAS = "nowhere"
    assert ids(check_settings()) == ["mongo_sessions.E040"]
    with pytest.raises(ImproperlyConfigured) as raised:
        SessionStore().save()
    assert str(raised.value).startswith(
        "mongo_sessions: MONGO_SESSIONS_DATABASE_ALIAS = 'nowhere' cannot be used: "
    )
    assert "(mongo_sessions.E040). Name a DATABASES entry" in str(raised.value)


def test_valid_urls_pass(settings: Any) -> None:
    settings.MONGO_SESSIONS_URL = "mongodb://127.0.0.1:1/db?tls=false&w=majority"
    assert check_settings() == []
    settings.MONGO_SESSIONS_CLIENT_OPTIONS = {"tlsAllowInvalidHostnames": True}
    settings.MONGO_SESSIONS_URL = "mongodb+srv://app:pw@cluster0.example.invalid/db"
    assert check_settings() == []


def test_an_escaped_password_is_valid(settings: Any) -> None:
    settings.MONGO_SESSIONS_URL = f"mongodb://app:{quote_plus(PASSWORD)}@127.0.0.1:1/db"
    assert check_settings() == []


# --- check --deploy -----------------------------------------------------------------------


def test_deploy_check_without_dns_is_e101_with_a_hint(settings: Any) -> None:
    settings.MONGO_SESSIONS_URL = (
        f"mongodb+srv://app:{quote_plus(PASSWORD)}@cluster0.example.invalid/db"
    )
    settings.MONGO_SESSIONS_TIMEOUT = 2
    messages = check_server()
    assert ids(messages) == ["mongo_sessions.E101"]
    assert "DNS" in (messages[0].hint or "")
    assert PASSWORD not in messages[0].msg and quote_plus(PASSWORD) not in messages[0].msg
    with pytest.raises(SystemCheckError, match=r"mongo_sessions\.E101"):
        call_command("check", "--deploy")


DATABASE = "appdb"


def no_list_indexes_user(database: Database[dict[str, Any]]) -> None:
    """Create a user who may read and write the sessions, but not list the indexes."""
    database.command(
        "createRole",
        "sessionsWithoutListIndexes",
        privileges=[
            {
                "resource": {"db": DATABASE, "collection": ""},
                "actions": ["find", "insert", "update", "remove"],
            }
        ],
        roles=[],
    )
    database.command(
        "createUser", "no-list-indexes", pwd=PASSWORD, roles=["sessionsWithoutListIndexes"]
    )


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    storage = tmp_path_factory.mktemp("settings-errors") / "data"
    with auth_mongo_server(
        storage, DATABASE, "read-write", PASSWORD, provision=no_list_indexes_user
    ) as served:
        yield served


def use(settings: Any, url: str) -> None:
    settings.MONGO_SESSIONS_URL = url
    settings.MONGO_SESSIONS_COLLECTION = f"sessions_{uuid.uuid4().hex[:8]}"
    settings.MONGO_SESSIONS_TIMEOUT = 2


def test_deploy_check_user_without_list_indexes_is_e104(
    settings: Any, auth_server: AuthServer
) -> None:
    use(settings, auth_server.url("no-list-indexes"))
    messages = check_server()
    assert ids(messages) == ["mongo_sessions.E104"]
    assert "listIndexes" in messages[0].msg
    assert "readWrite" in (messages[0].hint or "")
    assert PASSWORD not in messages[0].msg


def test_deploy_check_refused_credentials_is_e105(settings: Any, auth_server: AuthServer) -> None:
    use(settings, auth_server.url("read-write", password="wrong" + PASSWORD))
    messages = check_server()
    assert ids(messages) == ["mongo_sessions.E105"]
    assert "authSource" in (messages[0].hint or "")
    assert PASSWORD not in messages[0].msg


def test_deploy_check_passes_for_a_read_write_user(settings: Any, auth_server: AuthServer) -> None:
    use(settings, auth_server.url("read-write"))
    call_command("mongo_sessions_setup")
    assert check_server() == []
