"""Every system check id, and `check --deploy` against the live server."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from mongo_sessions.checks import check_server, check_settings
from tests.servers import free_port


def ids(messages: list[Any]) -> list[str]:
    return [m.id for m in messages]


def test_valid_settings_give_no_messages(settings: Any) -> None:
    assert check_settings() == []


@pytest.mark.parametrize(
    ("overrides", "expected_id"),
    [
        ({"MONGO_CLIENT": 42}, "mongo_sessions.E001"),
        ({"MONGO_CLIENT": "tests.nowhere.client"}, "mongo_sessions.E002"),
        ({"MONGO_CLIENT": "tests.settings.SECRET_KEY"}, "mongo_sessions.E002"),
        ({"MONGO_SESSIONS_URL": "http://example.invalid"}, "mongo_sessions.E004"),
        ({"MONGO_SESSIONS_URL": "mongodb://h/db?notAnOption=1"}, "mongo_sessions.E004"),
        ({"MONGO_SESSIONS_URL": None, "MONGO_HOST": ""}, "mongo_sessions.E005"),
        ({"MONGO_SESSIONS_URL": None, "MONGO_PORT": "27017"}, "mongo_sessions.E005"),
        ({"MONGO_SESSIONS_URL": None, "MONGO_PORT": 70000}, "mongo_sessions.E005"),
        ({"MONGO_SESSIONS_URL": None, "MONGO_DB_USER": "u"}, "mongo_sessions.E006"),
        ({"MONGO_DB_NAME": "bad.name"}, "mongo_sessions.E007"),
        ({"MONGO_DB_NAME": ""}, "mongo_sessions.E007"),
        ({"MONGO_SESSIONS_COLLECTION": "system.sessions"}, "mongo_sessions.E008"),
        ({"MONGO_SESSIONS_COLLECTION": "a$b"}, "mongo_sessions.E008"),
        ({"MONGO_SESSIONS_TTL": 0}, "mongo_sessions.E009"),
        ({"MONGO_SESSIONS_TTL": "3600"}, "mongo_sessions.E009"),
        ({"MONGO_SESSIONS_CLIENT_OPTIONS": ["tls"]}, "mongo_sessions.E010"),
        ({"MONGO_SESSIONS_CLIENT_OPTIONS": {"noSuchOption": 1}}, "mongo_sessions.E010"),
        ({"MONGO_SESSIONS_CLIENT_OPTIONS": {"maxPoolSize": "many"}}, "mongo_sessions.E010"),
        ({"MONGO_DB_USER": "u", "MONGO_DB_PASSWORD": "p"}, "mongo_sessions.E012"),
        ({"MONGO_SESSIONS_TIMEOUT": 0}, "mongo_sessions.E013"),
        ({"MONGO_SESSIONS_TIMEOUT": "5"}, "mongo_sessions.E013"),
        ({"MONGO_SESSIONS_AUTO_INDEX": "no"}, "mongo_sessions.E014"),
        ({"MONGO_HOST": "db.internal"}, "mongo_sessions.W001"),
        ({"MONGO_SESSIONS_URL": ""}, "mongo_sessions.E004"),
        ({"MONGO_SESSIONS_URL": "mongodb://h/my.project"}, "mongo_sessions.E004"),
        ({"MONGO_SESSIONS_BATCH_SIZE": 0}, "mongo_sessions.E018"),
        ({"MONGO_SESSIONS_BATCH_TIMEOUT": "abc"}, "mongo_sessions.E018"),
        ({"MONGO_SESSIONS_URL": "mongodb://h/db?w=0"}, "mongo_sessions.E019"),
        ({"MONGO_SESSIONS_CLIENT_OPTIONS": {"w": 0}}, "mongo_sessions.E019"),
    ],
)
def test_each_check_id(settings: Any, overrides: dict[str, Any], expected_id: str) -> None:
    for name, value in overrides.items():
        setattr(settings, name, value)
    messages = check_settings()
    assert expected_id in ids(messages)
    for message in messages:
        assert message.hint, message.id


def test_client_and_url_together(settings: Any, mongo_client: Any) -> None:
    settings.MONGO_CLIENT = mongo_client
    assert ids(check_settings()) == ["mongo_sessions.E003"]


def test_client_options_with_a_given_client(settings: Any, mongo_client: Any) -> None:
    settings.MONGO_SESSIONS_URL = None
    settings.MONGO_CLIENT = mongo_client
    settings.MONGO_SESSIONS_CLIENT_OPTIONS = {"maxPoolSize": 5}
    assert ids(check_settings()) == ["mongo_sessions.E011"]


def test_srv_url_is_validated_without_dns(settings: Any) -> None:
    settings.MONGO_SESSIONS_URL = "mongodb+srv://cluster0.example.invalid/sessions?retryWrites=true"
    assert check_settings() == []


def test_checks_run_by_manage_py(settings: Any) -> None:
    settings.MONGO_SESSIONS_TTL = -1
    with pytest.raises(SystemCheckError, match=r"mongo_sessions\.E009"):
        call_command("check")


def test_deploy_check_passes_against_a_ready_server(sessions_collection: Any) -> None:
    call_command("mongo_sessions_setup")
    assert check_server() == []


def test_deploy_check_reports_an_unreachable_server(settings: Any) -> None:
    settings.MONGO_SESSIONS_URL = f"mongodb://127.0.0.1:{free_port()}/x"
    settings.MONGO_SESSIONS_TIMEOUT = 0.5
    assert ids(check_server()) == ["mongo_sessions.E101"]


def test_deploy_check_reports_missing_indexes(settings: Any, sessions_collection: Any) -> None:
    sessions_collection.insert_one({"_id": "x"})  # the collection exists, without our indexes
    messages = check_server()
    assert ids(messages) == ["mongo_sessions.E102"]
    assert "expire_date" in messages[0].msg


def test_deploy_check_warns_about_the_seed_index(sessions_collection: Any) -> None:
    call_command("mongo_sessions_setup")
    sessions_collection.create_index("creation_date", expireAfterSeconds=1209600)
    assert ids(check_server()) == ["mongo_sessions.W101"]


def test_check_deploy_command_includes_the_server_checks(settings: Any) -> None:
    settings.MONGO_SESSIONS_URL = f"mongodb://127.0.0.1:{free_port()}/x"
    settings.MONGO_SESSIONS_TIMEOUT = 0.5
    with pytest.raises(SystemCheckError, match=r"mongo_sessions\.E101"):
        call_command("check", "--deploy")


@pytest.mark.parametrize(
    ("overrides", "text"),
    [
        ({"MONGO_CLIENT": 42, "MONGO_SESSIONS_URL": None}, "MONGO_CLIENT is an int."),
        ({"MONGO_DB_NAME": 5}, "it is an int, not a string"),
        ({"MONGO_SESSIONS_CLIENT_OPTIONS": 5}, "it is an int, not a dict"),
        ({"MONGO_SESSIONS_URL": 5}, "it is an int, not a string"),
        ({"MONGO_HOST": "db.internal"}, "MONGO_HOST is ignored because"),
        (
            {"MONGO_HOST": "db.internal", "MONGO_PORT": 27018},
            "MONGO_HOST and MONGO_PORT are ignored because",
        ),
        ({"MONGO_SESSIONS_TTL": 3600.5}, "must be a positive integer number of seconds"),
    ],
)
def test_messages_are_worded_right(settings: Any, overrides: dict[str, Any], text: str) -> None:
    for name, value in overrides.items():
        setattr(settings, name, value)
    assert any(text in message.msg for message in check_settings())
