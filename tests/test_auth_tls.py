"""Authentication (SCRAM) and transport security (TLS) against dedicated servers.

The users are provisioned the way SecantusDB and mongod want it: the server is
started once without auth, createUser runs in the database that will be the
authSource, and the server is restarted with --auth on the same data. The
certificates are made by the test with trustme: one CA the client trusts, and
another one whose server the client must refuse.
"""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import pymongo
import pytest

from mongo_sessions import connection
from mongo_sessions.exceptions import SessionStoreError, SessionStoreUnavailable
from mongo_sessions.session import SessionStore
from tests.servers import (
    AuthServer,
    ChildProcess,
    TlsFiles,
    auth_mongo_server,
    make_tls_files,
    test_mongo_server,
)
from tests.support import requires_async_api

DATABASE = "appdb"
USER = "app-user"
# Characters that must be escaped in a URL, and a value to search for in errors.
PASSWORD = f"s3cr:et/p@ss%{uuid.uuid4().hex[:8]}"
WRONG_PASSWORD = f"wr:ong/p@ss%{uuid.uuid4().hex[:8]}"
TIMEOUT = 1.0
MARGIN = 1.5


def full_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


def round_trip() -> str:
    """Save a session and load it with a fresh store; return its key."""
    store = SessionStore()
    store["cart"] = {"apple": 2}
    store.save()
    assert SessionStore(store.session_key).load() == {"cart": {"apple": 2}}
    return store.session_key or ""


def use_settings(settings: Any, **values: Any) -> None:
    """Point the package elsewhere than the suite's server (URL and collection cleared)."""
    settings.MONGO_SESSIONS_URL = None
    settings.MONGO_SESSIONS_COLLECTION = f"sessions_{uuid.uuid4().hex[:8]}"
    for name, value in values.items():
        setattr(settings, name, value)


# --- SCRAM authentication ---------------------------------------------------------


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    storage = tmp_path_factory.mktemp("auth") / "data"
    with auth_mongo_server(storage, DATABASE, USER, PASSWORD) as served:
        yield served


@pytest.fixture
def auth_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    for name in ("mongo_sessions", "django", "pymongo"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def host_style(settings: Any, server: AuthServer, password: str | bool = PASSWORD) -> None:
    use_settings(
        settings,
        MONGO_HOST="127.0.0.1",
        MONGO_PORT=server.port,
        MONGO_DB_NAME=DATABASE,
        MONGO_DB_USER=USER,
        MONGO_DB_PASSWORD=password,
    )


def test_host_style_credentials_authenticate_against_the_db_name(
    auth_server: AuthServer, settings: Any
) -> None:
    host_style(settings, auth_server)
    key = round_trip()
    assert connection.describe_connection()["style"] == "host"
    assert connection.wait_for_auto_index(30)  # built in the background
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(auth_server.url())
    with client:
        collection = client[DATABASE][settings.MONGO_SESSIONS_COLLECTION]
        assert collection.count_documents({"_id": key}) == 1
        index_names = {index["name"] for index in collection.list_indexes()}
    assert "expire_date_1" in index_names  # readWrite may create the indexes


@requires_async_api
async def test_host_style_credentials_from_async_code(
    auth_server: AuthServer, settings: Any
) -> None:
    host_style(settings, auth_server)
    store = SessionStore()
    store["visits"] = 1
    await store.asave()
    assert await SessionStore(store.session_key).aget("visits") == 1


def test_url_with_credentials_authenticates(auth_server: AuthServer, settings: Any) -> None:
    use_settings(settings, MONGO_SESSIONS_URL=auth_server.url())
    round_trip()
    assert connection.describe_connection()["database"] == DATABASE


@pytest.mark.parametrize("style", ["host", "url"])
def test_wrong_password_is_a_clear_error_that_does_not_print_it(
    auth_server: AuthServer, settings: Any, auth_logs: pytest.LogCaptureFixture, style: str
) -> None:
    if style == "host":
        host_style(settings, auth_server, password=WRONG_PASSWORD)
    else:
        use_settings(settings, MONGO_SESSIONS_URL=auth_server.url(password=WRONG_PASSWORD))
    settings.MONGO_SESSIONS_TIMEOUT = TIMEOUT

    started = time.monotonic()
    with pytest.raises(SessionStoreError) as raised:
        SessionStore().save()
    elapsed = time.monotonic() - started

    message = str(raised.value)
    assert "session create failed" in message
    assert "code 18" in message and "authentication failed" in message.lower()
    assert elapsed < TIMEOUT + MARGIN
    for secret in (WRONG_PASSWORD, quote_plus(WRONG_PASSWORD), PASSWORD):
        assert secret not in full_text(raised.value)
        assert secret not in auth_logs.text


def test_no_credentials_against_an_auth_server_is_refused(
    auth_server: AuthServer, settings: Any
) -> None:
    use_settings(settings, MONGO_SESSIONS_URL=f"mongodb://127.0.0.1:{auth_server.port}/{DATABASE}")
    with pytest.raises(SessionStoreError) as raised:
        SessionStore("0123456789abcdefghijklmnopqrstuv").load()
    assert "session load failed" in str(raised.value)
    assert "code 13" in str(raised.value)  # Unauthorized


# --- TLS -----------------------------------------------------------------------------


@dataclass
class TlsServers:
    trusted: TlsFiles  # the client trusts this CA
    good: ChildProcess  # certificate from the trusted CA
    rogue: ChildProcess  # certificate from a CA the client does not know


@pytest.fixture(scope="module")
def tls_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServers]:
    storage = tmp_path_factory.mktemp("tls")
    trusted = make_tls_files(storage / "tls", "trusted")
    rogue_files = make_tls_files(storage / "tls", "rogue")
    servers = []
    try:
        for name, files in (("good", trusted), ("rogue", rogue_files)):
            # Each server answers its readiness ping with its own CA's trust.
            servers.append(test_mongo_server(storage / name, tls=files).start())
        yield TlsServers(trusted=trusted, good=servers[0], rogue=servers[1])
    finally:
        connection.reset()
        for server in servers:
            server.kill()  # throwaway data; a TLS server is slow to stop on SIGTERM


def test_tls_with_ca_file_in_the_url(tls_servers: TlsServers, settings: Any) -> None:
    url = f"{tls_servers.good.url}{DATABASE}?tls=true&tlsCAFile={tls_servers.trusted.ca_file}"
    use_settings(settings, MONGO_SESSIONS_URL=url)
    round_trip()


def test_tls_with_ca_file_in_client_options(tls_servers: TlsServers, settings: Any) -> None:
    use_settings(
        settings,
        MONGO_SESSIONS_URL=f"{tls_servers.good.url}{DATABASE}",
        MONGO_SESSIONS_CLIENT_OPTIONS={"tls": True, "tlsCAFile": str(tls_servers.trusted.ca_file)},
    )
    round_trip()


@requires_async_api
async def test_tls_from_async_code(tls_servers: TlsServers, settings: Any) -> None:
    use_settings(
        settings,
        MONGO_SESSIONS_URL=f"{tls_servers.good.url}{DATABASE}",
        MONGO_SESSIONS_CLIENT_OPTIONS={"tls": True, "tlsCAFile": str(tls_servers.trusted.ca_file)},
    )
    store = SessionStore()
    store["visits"] = 1
    await store.asave()
    assert await SessionStore(store.session_key).aget("visits") == 1


def test_untrusted_certificate_is_refused_within_the_timeout(
    tls_servers: TlsServers, settings: Any
) -> None:
    use_settings(
        settings,
        MONGO_SESSIONS_URL=f"{tls_servers.rogue.url}{DATABASE}",
        MONGO_SESSIONS_CLIENT_OPTIONS={"tls": True, "tlsCAFile": str(tls_servers.trusted.ca_file)},
        MONGO_SESSIONS_TIMEOUT=TIMEOUT,
    )
    started = time.monotonic()
    with pytest.raises(SessionStoreUnavailable) as raised:
        SessionStore().save()
    elapsed = time.monotonic() - started

    assert elapsed < TIMEOUT + MARGIN, f"refused after {elapsed:.2f} s"
    assert "certificate verify failed" in str(raised.value).lower()
    assert "TLS certificate is not trusted" in str(raised.value)


def test_plain_client_against_a_tls_server_fails_within_the_timeout(
    tls_servers: TlsServers, settings: Any
) -> None:
    use_settings(
        settings,
        MONGO_SESSIONS_URL=f"{tls_servers.good.url}{DATABASE}",
        MONGO_SESSIONS_TIMEOUT=TIMEOUT,
    )
    started = time.monotonic()
    with pytest.raises(SessionStoreUnavailable):
        SessionStore("0123456789abcdefghijklmnopqrstuv").load()
    assert time.monotonic() - started < TIMEOUT + MARGIN
