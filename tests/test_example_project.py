"""End to end: the demo site in example_project/, run as real processes.

Each test starts the site (gunicorn, or the whole ``rundemo`` command) as a
subprocess on 127.0.0.1 against the suite's MongoDB-wire server, and talks to
it over HTTP the way a browser or a load-test client does: cookies, the CSRF
token from the ``csrftoken`` cookie, the JSON API under ``/api/``.
"""

from __future__ import annotations

import importlib.util
import signal
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pymongo
import pytest

from tests.http_client import Client
from tests.servers import (
    demo_env,
    free_port,
    gunicorn_site,
    pid_alive,
    run_demo_setup,
    rundemo,
    with_database,
)

pytestmark = pytest.mark.slow

COLLECTION = "mongo_sessions"
STYLES = [
    "url", "client", "database", "client-path", "database-path", "host",
    pytest.param("database-alias", marks=pytest.mark.skipif(
        importlib.util.find_spec("django_mongodb_backend") is None,
        reason="django-mongodb-backend is not installed (it needs Django 6.1 and Python 3.12+; "
        "the CI entry with Django 6.1 installs it)",
    )),
]  # fmt: skip

# --- fixtures ----------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_db_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir whose SQLite user table is migrated and holds the demo user."""
    data_dir = tmp_path_factory.mktemp("demo-data")
    result = run_demo_setup(data_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Demo user 'demo' created" in result.stdout
    return data_dir


# --- tests -------------------------------------------------------------------


def test_demo_setup_is_idempotent(demo_db_dir: Path) -> None:
    again = run_demo_setup(demo_db_dir)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Demo user 'demo' already there" in again.stdout


@pytest.mark.parametrize("style", STYLES)
def test_each_connection_style_keeps_a_session(
    style: str,
    mongo_url: str,
    mongo_client: pymongo.MongoClient[dict[str, Any]],
    demo_db_dir: Path,
    tmp_path: Path,
) -> None:
    database = "demo_style_" + style.replace("-", "_")
    mongo_client.drop_database(database)
    env = demo_env(
        MONGO_SESSIONS_STYLE=style,
        MONGO_SESSIONS_URL=with_database(mongo_url, database),
        DEMO_DATA_DIR=str(demo_db_dir),
    )
    with gunicorn_site(env, tmp_path / "gunicorn.log") as base:
        client = Client(base)
        assert client.get("/api/counter/").json() == {"visits": 1}
        key = client.session_key
        assert key
        assert client.get("/api/counter/").json() == {"visits": 2}
        assert client.session_key == key

        document = mongo_client[database][COLLECTION].find_one({"_id": key})
        assert document is not None, f"no session document in {database}.{COLLECTION}"
        assert document["expire_date"] > datetime.now(timezone.utc)

        info = client.get("/api/session/").json()
        server = urlsplit(mongo_url)
        assert info["style"] == style
        assert info["address"] == f"{server.hostname}:{server.port}"
        assert info["size"] > 0
        assert info["session_key_hash"]

        health = client.get("/health/")
        assert (health.status, health.json()) == (200, {"status": "ok"})

        # A new client (no cookie) starts from zero: the count is per session.
        assert Client(base).get("/api/counter/").json() == {"visits": 1}


@pytest.mark.parametrize("style", ["client", "database", "client-path", "database-path"])
def test_each_client_style_logs_in_under_asgi(
    style: str, mongo_url: str, mongo_client: pymongo.MongoClient[dict[str, Any]], tmp_path: Path
) -> None:
    """``rundemo --asgi`` with a style that sets MONGO_CLIENT: the async methods have a client."""
    database = "demo_asgi_style_" + style.replace("-", "_")
    mongo_client.drop_database(database)
    env = demo_env(
        MONGO_SESSIONS_STYLE=style, MONGO_SESSIONS_URL=with_database(mongo_url, database)
    )
    login = {"username": "demo", "password": "demo-password"}
    with rundemo(env, tmp_path / "data", tmp_path / "rundemo.log", workers=1, asgi=True) as demo:
        browser = Client(demo.base)
        assert browser.post("/api/login/", login).json() == {"user": "demo"}, demo.output()
        assert [browser.get("/api/counter/").json()["visits"] for _ in range(2)] == [1, 2]
        stored = mongo_client[database][COLLECTION].find_one({"_id": browser.session_key})
        assert stored is not None and stored["user_id"]
        assert demo.stop() == 0, demo.output()
    mongo_client.drop_database(database)


def test_json_contract_cart_login_sessions_logout(
    mongo_url: str,
    mongo_client: pymongo.MongoClient[dict[str, Any]],
    demo_db_dir: Path,
    tmp_path: Path,
) -> None:
    """The JSON answers of the demo along one visitor's visit: cart, login, sessions, logout.

    Over 60 lines on purpose: each step starts from what the previous one left
    (the cookie, the cart, the login), so the steps cannot be tests of their own.
    """
    database = "demo_contract"
    mongo_client.drop_database(database)
    sessions = mongo_client[database][COLLECTION]
    env = demo_env(
        MONGO_SESSIONS_URL=with_database(mongo_url, database), DEMO_DATA_DIR=str(demo_db_dir)
    )
    with gunicorn_site(env, tmp_path / "gunicorn.log", workers=2) as base:
        browser = Client(base)
        # The CSRF cookie comes with any page, JSON or not; POSTs without the token fail.
        assert browser.get("/api/cart/").json() == {"cart": {}, "total": "0.00"}
        assert "csrftoken" in browser.cookies
        assert browser.post("/api/cart/add/", {"item": "apple"}, csrf=False).status == 403

        for change, item, cart, total in [
            ("add", "apple", {"apple": 1}, "0.50"),
            ("add", "apple", {"apple": 2}, "1.00"),
            ("add", "coffee", {"apple": 2, "coffee": 1}, "8.00"),
            ("remove", "coffee", {"apple": 2}, "1.00"),
            ("remove", "bread", {"apple": 2}, "1.00"),  # not in the cart: nothing changes
        ]:
            answer = browser.post(f"/api/cart/{change}/", {"item": item}).json()
            assert answer == {"cart": cart, "total": total}, (change, item)
        unknown = browser.post("/api/cart/add/", {"item": "caviar"})
        assert unknown.status == 400
        assert browser.get("/api/cart/").json() == {"cart": {"apple": 2}, "total": "1.00"}
        assert browser.post("/api/counter/").json() == {"visits": 1}
        assert browser.get("/api/counter/").json() == {"visits": 2}

        # Bad credentials: 401, same session.
        anonymous_key = browser.session_key
        assert anonymous_key
        bad = browser.post("/api/login/", {"username": "demo", "password": "wrong"})
        assert (bad.status, bad.json()["user"]) == (401, None)
        assert browser.session_key == anonymous_key

        # Login with "remember me": a new key, the old document gone, the cart kept.
        login = browser.post(
            "/api/login/", {"username": "demo", "password": "demo-password", "remember": "on"}
        )
        assert (login.status, login.json()) == (200, {"user": "demo"})
        cookie = login.set_cookie("sessionid")
        assert cookie is not None
        max_age = int(cookie["sessionid"]["max-age"])
        assert abs(max_age - 30 * 24 * 3600) < 60
        logged_in_key = browser.session_key
        assert logged_in_key and logged_in_key != anonymous_key
        assert sessions.find_one({"_id": anonymous_key}) is None
        document = sessions.find_one({"_id": logged_in_key})
        assert document is not None and document.get("user_id")
        remaining = document["expire_date"] - datetime.now(timezone.utc)
        assert timedelta(days=29, hours=23) < remaining <= timedelta(days=30)
        assert browser.get("/api/cart/").json() == {"cart": {"apple": 2}, "total": "1.00"}
        assert browser.get("/api/login/").json() == {"user": "demo"}
        detail = browser.get("/session/", accept="text/html").text
        assert '"_auth_user_hash": "(hidden)"' in detail.replace("&quot;", '"')
        stored = browser.get("/api/session/").json()
        assert f'<code id="key-hash">{stored["session_key_hash"]}</code>' in detail
        assert f'<span id="size">{stored["size"]}</span>' in detail
        assert stored["size"] > 0

        # A second device logs in without "remember me": a browser-session cookie.
        phone = Client(base)
        login = phone.post("/api/login/", {"username": "demo", "password": "demo-password"})
        assert login.json() == {"user": "demo"}
        cookie = login.set_cookie("sessionid")
        assert cookie is not None
        assert not cookie["sessionid"]["max-age"] and not cookie["sessionid"]["expires"]
        assert phone.get("/api/counter/").json() == {"visits": 1}

        # /api/sessions/ lists both, the current one marked; so does the package's page.
        listed = browser.get("/api/sessions/").json()["sessions"]
        assert len(listed) == 2
        assert [s["current"] for s in listed].count(True) == 1
        page = browser.get("/account/sessions/", accept="text/html")
        assert page.status == 200 and "(this device)" in page.text

        # "Log out my other devices" from the browser: the phone is signed out.
        assert browser.post("/api/sessions/revoke-others/").json() == {"revoked": 1}
        assert sessions.find_one({"_id": phone.session_key}) is None
        assert phone.get("/api/sessions/").status == 401
        assert phone.get("/api/login/").json() == {"user": None}
        assert len(browser.get("/api/sessions/").json()["sessions"]) == 1

        # Logout deletes the document; replaying the old cookie is anonymous.
        old_key = browser.session_key
        assert browser.post("/api/logout/").json() == {"user": None}
        assert sessions.find_one({"_id": old_key}) is None
        replay = Client(base, {"sessionid": old_key or ""})
        assert replay.get("/api/login/").json() == {"user": None}
        assert replay.get("/api/cart/").json() == {"cart": {}, "total": "0.00"}
        assert replay.get("/api/sessions/").status == 401

        # The pages are HTML whatever the request accepts: JSON is the API's job.
        html = Client(base)
        assert html.get("/account/sessions/", accept="text/html").status == 302
        for path in ("/", "/counter/", "/cart/", "/login/", "/logout/", "/session/"):
            for accept in ("text/html,application/xhtml+xml,*/*;q=0.8", "application/json"):
                page = html.get(path, accept=accept)
                assert page.status == 200, path
                assert page.headers["Content-Type"].startswith("text/html"), (path, accept)
                assert "<html" in page.text
        add = html.post("/cart/add/", {"item": "bread"}, accept="text/html")
        assert (add.status, add.headers["Location"]) == (302, "/cart/")


def test_health_is_503_when_mongodb_is_down(demo_db_dir: Path, tmp_path: Path) -> None:
    closed_port = free_port()  # nothing listens there
    env = demo_env(
        MONGO_SESSIONS_URL=f"mongodb://127.0.0.1:{closed_port}/demo",
        MONGO_SESSIONS_TIMEOUT="1",
        DEMO_DATA_DIR=str(demo_db_dir),
    )
    with gunicorn_site(env, tmp_path / "gunicorn.log") as base:
        response = Client(base).get("/health/")
        assert (response.status, response.json()) == (503, {"status": "unavailable"})


def test_rundemo_embedded_server_survives_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = demo_env()  # no MONGO_SESSIONS_URL: rundemo starts its own server
    with rundemo(env, data_dir, tmp_path / "run1.log", workers=3) as demo:
        pids = demo.pids()
        assert set(pids) == {"mongo", "gunicorn"}, demo.output()
        assert "Log in as demo / demo-password" in demo.output()
        client = Client(demo.base)
        login = client.post(
            "/api/login/", {"username": "demo", "password": "demo-password", "remember": "1"}
        )
        assert login.json() == {"user": "demo"}
        assert client.get("/api/counter/").json() == {"visits": 1}
        assert client.get("/api/counter/").json() == {"visits": 2}
        assert client.post("/api/cart/add/", {"item": "bread"}).json() == {
            "cart": {"bread": 1},
            "total": "2.25",
        }
        assert client.get("/api/session/").json()["style"] == "url"
        status = demo.stop()
    assert status == 0, demo.output()
    assert "Demo stopped." in demo.output()
    for name, pid in pids.items():
        assert not pid_alive(pid), f"{name} (pid {pid}) still running after rundemo stopped"
    assert (data_dir / "db.sqlite3").is_file()
    assert (data_dir / "mongo").is_dir()

    # Same data dir: the sessions (and the demo user) are still there.
    with rundemo(env, data_dir, tmp_path / "run2.log") as demo:
        assert "Demo user 'demo' already there" in demo.output()
        again = Client(demo.base, dict(client.cookies))
        assert again.get("/api/login/").json() == {"user": "demo"}
        assert again.get("/api/counter/").json() == {"visits": 3}
        assert again.get("/api/cart/").json() == {"cart": {"bread": 1}, "total": "2.25"}
        pids = demo.pids()
        assert demo.stop(signal.SIGINT) == 0, demo.output()  # Ctrl-C stops it too
    for pid in pids.values():
        assert not pid_alive(pid)


def test_rundemo_uses_mongo_sessions_url_and_starts_no_server(
    mongo_url: str, mongo_client: pymongo.MongoClient[dict[str, Any]], tmp_path: Path
) -> None:
    database = "demo_rundemo_external"
    mongo_client.drop_database(database)
    env = demo_env(MONGO_SESSIONS_URL=with_database(mongo_url, database))
    with rundemo(env, tmp_path / "data", tmp_path / "run.log") as demo:
        assert "Using the MongoDB server of MONGO_SESSIONS_URL" in demo.output()
        assert set(demo.pids()) == {"gunicorn"}, demo.output()
        assert not (tmp_path / "data" / "mongo").exists()
        client = Client(demo.base)
        assert client.get("/api/counter/").json() == {"visits": 1}
        assert mongo_client[database][COLLECTION].find_one({"_id": client.session_key}) is not None
