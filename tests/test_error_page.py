"""No MongoDB password on Django's DEBUG error page, whatever the configuration style.

Django's real technical 500 response, through the test client: the settings, the local
variables of every frame (the package's, pymongo's) and request.META are shown there.
With mongo_sessions.debug.SafeExceptionReporterFilter the password is nowhere on the
page; without it, it is (which is what the W002 check warns about).
"""

from __future__ import annotations

import sys
import types
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import pymongo
import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path
from django.views.debug import get_default_exception_reporter_filter

from mongo_sessions.checks import check_settings
from tests.servers import auth_mongo_server

FILTER = "mongo_sessions.debug.SafeExceptionReporterFilter"
DATABASE = "appdb"
USER = "app-user"
PASSWORD = f"right:pass/{uuid.uuid4().hex[:10]}"
# The password the site is configured with (refused by the server, so the request
# fails inside pymongo's authentication, whose frames hold the credentials).
CONFIGURED = f"s3cr:et/p@ss%{uuid.uuid4().hex[:10]}"


def touch_session(request: HttpRequest) -> HttpResponse:
    request.session["visits"] = 1
    return HttpResponse("ok")


urlpatterns = [path("touch/", touch_session)]


@pytest.fixture(scope="module")
def auth_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    storage = tmp_path_factory.mktemp("error-page") / "data"
    with auth_mongo_server(storage, DATABASE, USER, PASSWORD) as server:
        yield server.port


def url_with(port: int, password: str = CONFIGURED) -> str:
    return (
        f"mongodb://{quote_plus(USER)}:{quote_plus(password)}@127.0.0.1:{port}/{DATABASE}"
        f"?authSource={DATABASE}"
    )


@pytest.fixture
def given_client(auth_port: int) -> Iterator[pymongo.MongoClient[dict[str, Any]]]:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        url_with(auth_port), serverSelectionTimeoutMS=2000
    )
    module = types.ModuleType("tests_error_page_mongo")
    module.client = client  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    yield client
    del sys.modules[module.__name__]
    client.close()


STYLES = ["url", "host", "client options", "client object", "client path", "srv url"]


def configure_style(settings: Any, style: str, port: int, client: Any = None) -> None:
    """Configure the connection style ``style`` against ``port``, the password in it."""
    settings.MONGO_SESSIONS_URL = None
    settings.MONGO_SESSIONS_COLLECTION = f"sessions_{uuid.uuid4().hex[:8]}"
    settings.MONGO_SESSIONS_TIMEOUT = 2
    settings.MONGO_DB_NAME = DATABASE
    if style == "url":
        settings.MONGO_SESSIONS_URL = url_with(port)
    elif style == "host":
        settings.MONGO_HOST = "127.0.0.1"
        settings.MONGO_PORT = port
        settings.MONGO_DB_USER = USER
        settings.MONGO_DB_PASSWORD = CONFIGURED
    elif style == "client options":
        settings.MONGO_SESSIONS_URL = f"mongodb://127.0.0.1:{port}/{DATABASE}"
        settings.MONGO_SESSIONS_CLIENT_OPTIONS = {
            "username": USER,
            "password": CONFIGURED,
            "authSource": DATABASE,
        }
    elif style == "client object":
        settings.MONGO_CLIENT = client
    elif style == "client path":
        settings.MONGO_CLIENT = "tests_error_page_mongo.client"
    elif style == "srv url":
        # Fails inside the package's own code, whose frame holds the URL.
        settings.MONGO_SESSIONS_URL = (
            f"mongodb+srv://{quote_plus(USER)}:{quote_plus(CONFIGURED)}"
            "@cluster0.example.invalid/appdb"
        )


@pytest.fixture(params=STYLES)
def configured(
    request: pytest.FixtureRequest, settings: Any, auth_port: int, given_client: Any
) -> None:
    """Configure one connection style (each test runs with every one), the password in it."""
    configure_style(settings, request.param, auth_port, given_client)


@pytest.fixture(autouse=True)
def fresh_reporter_filter() -> Iterator[None]:
    # Django caches the filter instance for the process and no setting_changed
    # receiver clears it: without this, the first test's filter would serve all.
    get_default_exception_reporter_filter.cache_clear()
    yield
    get_default_exception_reporter_filter.cache_clear()


def error_page(settings: Any) -> str:
    settings.DEBUG = True
    settings.ROOT_URLCONF = __name__
    get_default_exception_reporter_filter.cache_clear()
    client = Client(raise_request_exception=False)
    # An environment variable holding the URL (runserver copies the environment to META).
    response = client.get("/touch/", MONGO_URL=url_with(1))
    assert response.status_code == 500
    page = response.content.decode()
    assert "Traceback" in page and "Local vars" in page and "Settings" in page
    return page


def leaks(page: str) -> list[str]:
    forms = {CONFIGURED, quote_plus(CONFIGURED), quote(CONFIGURED, safe="")}
    return [form for form in forms if form in page]


def test_no_password_on_the_debug_page(settings: Any, configured: None) -> None:
    settings.DEFAULT_EXCEPTION_REPORTER_FILTER = FILTER
    page = error_page(settings)
    assert leaks(page) == []
    assert "********" in page  # what was there is shown redacted


def test_without_the_filter_the_password_is_shown_and_check_warns(
    settings: Any, configured: None
) -> None:
    """What the filter is for: Django's own filter leaves the password on the page."""
    settings.DEBUG = True
    assert "mongo_sessions.W002" in [m.id for m in check_settings()]
    assert leaks(error_page(settings))


def test_w002_only_when_it_matters(settings: Any) -> None:
    settings.MONGO_SESSIONS_URL = url_with(1)
    settings.DEBUG = True
    assert "mongo_sessions.W002" in [m.id for m in check_settings()]
    settings.DEFAULT_EXCEPTION_REPORTER_FILTER = FILTER
    assert "mongo_sessions.W002" not in [m.id for m in check_settings()]
    settings.DEFAULT_EXCEPTION_REPORTER_FILTER = "django.views.debug.SafeExceptionReporterFilter"
    settings.DEBUG = False
    assert "mongo_sessions.W002" not in [m.id for m in check_settings()]
    settings.DEBUG = True
    settings.MONGO_SESSIONS_URL = "mongodb://127.0.0.1:1/appdb"  # no password at all
    assert "mongo_sessions.W002" not in [m.id for m in check_settings()]
    # A dotted path not imported yet may hold one: its module is imported on first use only.
    settings.MONGO_SESSIONS_URL = None
    settings.MONGO_CLIENT = "tests_error_page_not_imported.client"
    assert "mongo_sessions.W002" in [m.id for m in check_settings()]


SESSION_KEY = "abcdefgh12345678abcdefgh12345678"


@pytest.mark.parametrize("reporter_filter", [FILTER, None])
def test_no_session_key_on_the_debug_page(
    settings: Any, auth_port: int, reporter_filter: str | None
) -> None:
    """The session key of the failing request is shown as its hash, with or without the filter.

    The filter scrubs strings for passwords: a session key (a SessionKey, whose repr()
    is a hash) must come out of it as it went in, not as a plain str showing the key.
    """
    settings.MONGO_SESSIONS_URL = url_with(auth_port)  # refused: the load fails
    settings.MONGO_SESSIONS_COLLECTION = f"sessions_{uuid.uuid4().hex[:8]}"
    settings.MONGO_SESSIONS_TIMEOUT = 2
    settings.MONGO_DB_NAME = DATABASE
    if reporter_filter:
        settings.DEFAULT_EXCEPTION_REPORTER_FILTER = reporter_filter
    settings.DEBUG = True
    settings.ROOT_URLCONF = __name__
    get_default_exception_reporter_filter.cache_clear()
    client = Client(raise_request_exception=False)
    client.cookies[settings.SESSION_COOKIE_NAME] = SESSION_KEY
    response = client.get("/touch/")
    assert response.status_code == 500
    page = response.content.decode()
    assert "Local vars" in page
    assert SESSION_KEY not in page
    assert "&lt;session " in page or "<session " in page  # the hash is what is shown
    if reporter_filter:
        assert leaks(page) == []


@pytest.mark.parametrize("style", ["url", "host", "client options"])
def test_refused_credentials_name_the_settings_to_check(
    settings: Any, auth_port: int, style: str
) -> None:
    """A wrong password (code 18): the error says the credentials were refused, and where."""
    from mongo_sessions.exceptions import SessionStoreError
    from mongo_sessions.session import SessionStore

    configure_style(settings, style, auth_port)
    with pytest.raises(SessionStoreError) as raised:
        SessionStore(SESSION_KEY).load()
    text = str(raised.value)
    assert "refused the credentials (code 18 AuthenticationFailed)" in text
    for setting in ("MONGO_SESSIONS_URL", "MONGO_DB_PASSWORD", "MONGO_SESSIONS_CLIENT_OPTIONS"):
        assert setting in text
    assert leaks(text) == [] and SESSION_KEY not in text
