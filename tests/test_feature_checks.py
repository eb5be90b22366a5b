"""Checks of the database alias, the touch rule and device recording (E040-E044, W040-W041)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from mongo_sessions import connection
from mongo_sessions.checks import check_settings

PACKAGE_MIDDLEWARE = "mongo_sessions.middleware.SessionMiddleware"
DJANGO_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"


def ids(messages: list[Any]) -> list[str]:
    return [m.id for m in messages]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"MONGO_SESSIONS_DATABASE_ALIAS": "nowhere"}, ["mongo_sessions.E040"]),
        ({"MONGO_SESSIONS_DATABASE_ALIAS": 3}, ["mongo_sessions.E040"]),
        ({"MONGO_SESSIONS_DATABASE_ALIAS": ""}, ["mongo_sessions.E040"]),
        # "default" is SQLite in the tests' settings.
        ({"MONGO_SESSIONS_DATABASE_ALIAS": "default"}, ["mongo_sessions.E040"]),
        ({"MONGO_SESSIONS_TOUCH_AFTER": -1}, ["mongo_sessions.E042"]),
        ({"MONGO_SESSIONS_TOUCH_AFTER": "300"}, ["mongo_sessions.E042"]),
        ({"MONGO_SESSIONS_TOUCH_AFTER": True}, ["mongo_sessions.E042"]),
        ({"MONGO_SESSIONS_RECORD_DEVICES": "yes"}, ["mongo_sessions.E043"]),
        ({"MONGO_SESSIONS_DEVICE_ADDRESS": "full"}, ["mongo_sessions.E044"]),
    ],
)
def test_invalid_values(settings: Any, overrides: dict[str, Any], expected: list[str]) -> None:
    settings.MONGO_SESSIONS_URL = None
    settings.MIDDLEWARE = [PACKAGE_MIDDLEWARE]
    for name, value in overrides.items():
        setattr(settings, name, value)
    assert ids(check_settings()) == expected


@pytest.mark.parametrize(
    "contradicting",
    [
        {"MONGO_SESSIONS_URL": "mongodb://127.0.0.1/x"},
        {"MONGO_CLIENT": "tests.nowhere.client"},
        {"MONGO_HOST": "db.internal"},
        {"MONGO_PORT": 27018},
        {"MONGO_DB_NAME": "other"},
        {"MONGO_DB_USER": "u", "MONGO_DB_PASSWORD": "s3cret"},
        {"MONGO_SESSIONS_CLIENT_OPTIONS": {"tls": True}},
    ],
)
def test_alias_with_another_connection_setting_is_an_error(
    settings: Any, contradicting: dict[str, Any]
) -> None:
    settings.MONGO_SESSIONS_URL = None
    settings.MONGO_SESSIONS_DATABASE_ALIAS = "default"
    for name, value in contradicting.items():
        setattr(settings, name, value)
    messages = [m for m in check_settings() if m.id == "mongo_sessions.E041"]
    assert len(messages) == 1
    assert all(name in messages[0].msg for name in contradicting)
    assert "s3cret" not in messages[0].msg + str(messages[0].hint)


def test_the_unset_0x_defaults_do_not_contradict(settings: Any) -> None:
    settings.MONGO_SESSIONS_URL = None
    settings.MONGO_SESSIONS_DATABASE_ALIAS = "default"
    settings.MONGO_DB_USER = False
    settings.MONGO_DB_PASSWORD = False
    assert "mongo_sessions.E041" not in ids(check_settings())


def test_features_without_the_package_middleware_warn(settings: Any) -> None:
    settings.MIDDLEWARE = [DJANGO_MIDDLEWARE]
    settings.MONGO_SESSIONS_TOUCH_AFTER = 300
    settings.MONGO_SESSIONS_RECORD_DEVICES = True
    assert ids(check_settings()) == ["mongo_sessions.W040", "mongo_sessions.W041"]
    # With SESSION_SAVE_EVERY_REQUEST Django's middleware saves, so the touch rule applies.
    settings.SESSION_SAVE_EVERY_REQUEST = True
    assert ids(check_settings()) == ["mongo_sessions.W041"]
    settings.MIDDLEWARE = [PACKAGE_MIDDLEWARE]
    assert check_settings() == []


def test_a_wrong_alias_fails_at_run_time_naming_the_setting(settings: Any) -> None:
    settings.MONGO_SESSIONS_DATABASE_ALIAS = "nowhere"
    with pytest.raises(ImproperlyConfigured, match="MONGO_SESSIONS_DATABASE_ALIAS = 'nowhere'"):
        connection.get_target()
