"""End to end: the demo site in example_project/, run as real processes.

Each test starts the site (gunicorn, or the whole ``rundemo`` command) as a
subprocess on 127.0.0.1 against the suite's MongoDB-wire server, and talks to
it over HTTP the way a browser or a load-test client does: cookies, the CSRF
token from the ``csrftoken`` cookie, ``Accept: application/json``.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import pymongo
import pytest

from tests.servers import free_port

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parent.parent
PROJECT_DIR = REPO_ROOT / "example_project"
MANAGE_PY = PROJECT_DIR / "manage.py"
COLLECTION = "mongo_sessions"
STYLES = [
    "url", "client", "database", "client-path", "database-path", "host",
    pytest.param("database-alias", marks=pytest.mark.skipif(
        importlib.util.find_spec("django_mongodb_backend") is None,
        reason="django-mongodb-backend is not installed (it needs Django 6.1 and Python 3.12+; "
        "the CI entry with Django 6.1 installs it)",
    )),
]  # fmt: skip
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


# --- helpers (test_browser.py uses them too) ------------------------------


def with_database(url: str, database: str) -> str:
    """``url`` with its path (the database) replaced by ``database``."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


def site_env(**extra: str) -> dict[str, str]:
    """Environment of a demo subprocess: the demo's settings, not the suite's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MONGO_SESSIONS_", "MONGO_DB_", "DEMO_", "DJANGO_"))
    }
    env["DJANGO_SETTINGS_MODULE"] = "demo.settings"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def gunicorn_flags() -> list[str]:
    from gunicorn.config import KNOWN_SETTINGS

    known = {flag for setting in KNOWN_SETTINGS for flag in setting.cli or ()}
    return ["--no-control-socket"] if "--no-control-socket" in known else []


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()

    def set_cookie(self, name: str) -> SimpleCookie | None:
        for header in self.headers.get_all("Set-Cookie") or []:
            cookie: SimpleCookie = SimpleCookie()
            cookie.load(header)
            if name in cookie:
                return cookie
        return None


@dataclass
class Client:
    """A tiny HTTP client with a cookie jar; it never follows redirects."""

    base: str
    cookies: dict[str, str] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        data: dict[str, str] | None = None,
        accept: str = "application/json",
        csrf: bool = True,
    ) -> Response:
        parts = urlsplit(self.base)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        headers = {"Accept": accept}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if method == "POST":
            body = urlencode(data or {})
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            if csrf and "csrftoken" in self.cookies:
                headers["X-CSRFToken"] = self.cookies["csrftoken"]
        try:
            conn.request(method, path, body=body, headers=headers)
            raw = conn.getresponse()
            response = Response(raw.status, raw.msg, raw.read())
        finally:
            conn.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            cookie: SimpleCookie = SimpleCookie()
            cookie.load(header)
            for name, morsel in cookie.items():
                if morsel.value == "" or morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, data: dict[str, str] | None = None, **kwargs: Any) -> Response:
        if "csrftoken" not in self.cookies:
            self.get("/")  # any page GET sets the CSRF cookie
        return self.request("POST", path, data, **kwargs)

    @property
    def session_key(self) -> str | None:
        return self.cookies.get("sessionid")


def http_status(base: str, path: str = "/health/") -> int | None:
    try:
        return Client(base).get(path).status
    except (OSError, http.client.HTTPException):
        return None


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> int:
    """Stop one process by its own pid: ``sig``, then SIGKILL after a bound."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)
    return proc.returncode


@contextlib.contextmanager
def gunicorn_site(env: dict[str, str], log: Path, workers: int = 1) -> Iterator[str]:
    """Run ``gunicorn demo.wsgi`` on a free loopback port; yield its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable, "-m", "gunicorn", "demo.wsgi",
        "--chdir", str(PROJECT_DIR),
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers),
        "--timeout", "30",
        *gunicorn_flags(),
    ]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while http_status(base) is None:
            assert proc.poll() is None, f"gunicorn exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"gunicorn did not answer:\n{log.read_text()}"
            time.sleep(0.2)
        yield base
    finally:
        stop_process(proc)


@dataclass
class RunDemo:
    proc: subprocess.Popen[bytes]
    log: Path
    base: str

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def pids(self) -> dict[str, int]:
        """The children's pids, as rundemo printed them."""
        found: dict[str, int] = {}
        for line in self.output().splitlines():
            if line.startswith("Embedded MongoDB (SecantusDB) pid "):
                found["mongo"] = int(line.split()[4])
            elif line.startswith("gunicorn pid "):
                found["gunicorn"] = int(line.split()[2].rstrip(","))
        return found


@contextlib.contextmanager
def rundemo(env: dict[str, str], data_dir: Path, log: Path, workers: int = 2) -> Iterator[RunDemo]:
    """Run ``manage.py rundemo`` on a free port until the block ends."""
    port = free_port()
    cmd = [
        sys.executable, str(MANAGE_PY), "rundemo",
        "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--data-dir", str(data_dir),
    ]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
    demo = RunDemo(proc, log, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + START_TIMEOUT * 2
        while "Demo running at" not in demo.output():
            assert proc.poll() is None, f"rundemo exited early:\n{demo.output()}"
            assert time.monotonic() < deadline, f"rundemo did not start:\n{demo.output()}"
            time.sleep(0.2)
        yield demo
    finally:
        stop_process(proc)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --- fixtures ----------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_db_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir whose SQLite user table is migrated and holds the demo user."""
    data_dir = tmp_path_factory.mktemp("demo-data")
    result = subprocess.run(
        [sys.executable, str(MANAGE_PY), "demo_setup", "--skip-mongo"],
        env=site_env(DEMO_DATA_DIR=str(data_dir)),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Demo user 'demo' created" in result.stdout
    return data_dir


@pytest.fixture(scope="module")
def mongo(mongo_url: str) -> Iterator[pymongo.MongoClient[dict[str, Any]]]:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        mongo_url, serverSelectionTimeoutMS=5000, tz_aware=True
    )
    yield client
    client.close()


# --- tests -------------------------------------------------------------------


def test_demo_setup_is_idempotent(demo_db_dir: Path) -> None:
    again = subprocess.run(
        [sys.executable, str(MANAGE_PY), "demo_setup", "--skip-mongo"],
        env=site_env(DEMO_DATA_DIR=str(demo_db_dir)),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Demo user 'demo' already there" in again.stdout


@pytest.mark.parametrize("style", STYLES)
def test_each_connection_style_keeps_a_session(
    style: str,
    mongo_url: str,
    mongo: pymongo.MongoClient[dict[str, Any]],
    demo_db_dir: Path,
    tmp_path: Path,
) -> None:
    database = "demo_style_" + style.replace("-", "_")
    mongo.drop_database(database)
    env = site_env(
        MONGO_SESSIONS_STYLE=style,
        MONGO_SESSIONS_URL=with_database(mongo_url, database),
        DEMO_DATA_DIR=str(demo_db_dir),
    )
    with gunicorn_site(env, tmp_path / "gunicorn.log") as base:
        client = Client(base)
        assert client.get("/counter/").json() == {"visits": 1}
        key = client.session_key
        assert key
        assert client.get("/counter/").json() == {"visits": 2}
        assert client.session_key == key

        document = mongo[database][COLLECTION].find_one({"_id": key})
        assert document is not None, f"no session document in {database}.{COLLECTION}"
        assert document["expire_date"] > datetime.now(timezone.utc)

        info = client.get("/session/").json()
        server = urlsplit(mongo_url)
        assert info["style"] == style
        assert info["address"] == f"{server.hostname}:{server.port}"
        assert info["size"] > 0
        assert info["session_key_hash"]

        health = client.get("/health/")
        assert (health.status, health.json()) == (200, {"status": "ok"})

        # A new client (no cookie) starts from zero: the count is per session.
        assert Client(base).get("/counter/").json() == {"visits": 1}


def test_json_contract_cart_login_sessions_logout(
    mongo_url: str,
    mongo: pymongo.MongoClient[dict[str, Any]],
    demo_db_dir: Path,
    tmp_path: Path,
) -> None:
    database = "demo_contract"
    mongo.drop_database(database)
    sessions = mongo[database][COLLECTION]
    env = site_env(
        MONGO_SESSIONS_URL=with_database(mongo_url, database), DEMO_DATA_DIR=str(demo_db_dir)
    )
    with gunicorn_site(env, tmp_path / "gunicorn.log", workers=2) as base:
        browser = Client(base)
        # The CSRF cookie comes with any page, JSON or not; POSTs without the token fail.
        assert browser.get("/cart/").json() == {"cart": {}, "total": "0.00"}
        assert "csrftoken" in browser.cookies
        assert browser.post("/cart/add/", {"item": "apple"}, csrf=False).status == 403

        assert browser.post("/cart/add/", {"item": "apple"}).json() == {
            "cart": {"apple": 1},
            "total": "0.50",
        }
        assert browser.post("/cart/add/", {"item": "apple"}).json() == {
            "cart": {"apple": 2},
            "total": "1.00",
        }
        assert browser.post("/cart/add/", {"item": "coffee"}).json() == {
            "cart": {"apple": 2, "coffee": 1},
            "total": "8.00",
        }
        assert browser.post("/cart/remove/", {"item": "coffee"}).json() == {
            "cart": {"apple": 2},
            "total": "1.00",
        }
        assert browser.post("/cart/remove/", {"item": "bread"}).json() == {
            "cart": {"apple": 2},
            "total": "1.00",
        }
        unknown = browser.post("/cart/add/", {"item": "caviar"})
        assert unknown.status == 400
        assert browser.get("/cart/").json() == {"cart": {"apple": 2}, "total": "1.00"}
        assert browser.post("/counter/").json() == {"visits": 1}
        assert browser.get("/counter/").json() == {"visits": 2}

        # Bad credentials: 401, same session.
        anonymous_key = browser.session_key
        assert anonymous_key
        bad = browser.post("/login/", {"username": "demo", "password": "wrong"})
        assert (bad.status, bad.json()["user"]) == (401, None)
        assert browser.session_key == anonymous_key

        # Login with "remember me": a new key, the old document gone, the cart kept.
        login = browser.post(
            "/login/", {"username": "demo", "password": "demo-password", "remember": "on"}
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
        assert browser.get("/cart/").json() == {"cart": {"apple": 2}, "total": "1.00"}
        assert browser.get("/login/").json() == {"user": "demo"}
        detail = browser.get("/session/", accept="text/html").text
        assert '"_auth_user_hash": "(hidden)"' in detail.replace("&quot;", '"')

        # A second device logs in without "remember me": a browser-session cookie.
        phone = Client(base)
        login = phone.post("/login/", {"username": "demo", "password": "demo-password"})
        assert login.json() == {"user": "demo"}
        cookie = login.set_cookie("sessionid")
        assert cookie is not None
        assert not cookie["sessionid"]["max-age"] and not cookie["sessionid"]["expires"]
        assert phone.get("/counter/").json() == {"visits": 1}

        # /sessions/ lists both, the current one marked.
        listed = browser.get("/sessions/").json()["sessions"]
        assert len(listed) == 2
        assert [s["current"] for s in listed].count(True) == 1
        page = browser.get("/account/sessions/", accept="text/html")
        assert page.status == 200 and "(this device)" in page.text

        # "Log out my other devices" from the browser: the phone is signed out.
        assert browser.post("/sessions/revoke-others/").json() == {"revoked": 1}
        assert sessions.find_one({"_id": phone.session_key}) is None
        assert phone.get("/sessions/").status == 401
        assert phone.get("/login/").json() == {"user": None}
        assert len(browser.get("/sessions/").json()["sessions"]) == 1

        # Logout deletes the document; replaying the old cookie is anonymous.
        old_key = browser.session_key
        assert browser.post("/logout/").json() == {"user": None}
        assert sessions.find_one({"_id": old_key}) is None
        replay = Client(base, {"sessionid": old_key or ""})
        assert replay.get("/login/").json() == {"user": None}
        assert replay.get("/cart/").json() == {"cart": {}, "total": "0.00"}
        assert replay.get("/sessions/").status == 401

        # Browsers get pages and redirects instead of JSON.
        html = Client(base)
        assert html.get("/sessions/", accept="text/html").status == 302
        for path in ("/", "/counter/", "/cart/", "/login/", "/logout/", "/session/"):
            page = html.get(path, accept="text/html,application/xhtml+xml,*/*;q=0.8")
            assert page.status == 200, path
            assert "<html" in page.text
        add = html.post("/cart/add/", {"item": "bread"}, accept="text/html")
        assert (add.status, add.headers["Location"]) == (302, "/cart/")


def test_health_is_503_when_mongodb_is_down(demo_db_dir: Path, tmp_path: Path) -> None:
    closed_port = free_port()  # nothing listens there
    env = site_env(
        MONGO_SESSIONS_URL=f"mongodb://127.0.0.1:{closed_port}/demo",
        MONGO_SESSIONS_TIMEOUT="1",
        DEMO_DATA_DIR=str(demo_db_dir),
    )
    with gunicorn_site(env, tmp_path / "gunicorn.log") as base:
        response = Client(base).get("/health/")
        assert (response.status, response.json()) == (503, {"status": "unavailable"})


def test_rundemo_embedded_server_survives_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = site_env()  # no MONGO_SESSIONS_URL: rundemo starts its own server
    with rundemo(env, data_dir, tmp_path / "run1.log", workers=3) as demo:
        pids = demo.pids()
        assert set(pids) == {"mongo", "gunicorn"}, demo.output()
        assert "Log in as demo / demo-password" in demo.output()
        client = Client(demo.base)
        login = client.post(
            "/login/", {"username": "demo", "password": "demo-password", "remember": "1"}
        )
        assert login.json() == {"user": "demo"}
        assert client.get("/counter/").json() == {"visits": 1}
        assert client.get("/counter/").json() == {"visits": 2}
        assert client.post("/cart/add/", {"item": "bread"}).json() == {
            "cart": {"bread": 1},
            "total": "2.25",
        }
        assert client.get("/session/").json()["style"] == "url"
        status = stop_process(demo.proc)
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
        assert again.get("/login/").json() == {"user": "demo"}
        assert again.get("/counter/").json() == {"visits": 3}
        assert again.get("/cart/").json() == {"cart": {"bread": 1}, "total": "2.25"}
        pids = demo.pids()
        demo.proc.send_signal(signal.SIGINT)  # Ctrl-C stops it too
        assert stop_process(demo.proc) == 0, demo.output()
    for pid in pids.values():
        assert not pid_alive(pid)


def test_rundemo_uses_mongo_sessions_url_and_starts_no_server(
    mongo_url: str, mongo: pymongo.MongoClient[dict[str, Any]], tmp_path: Path
) -> None:
    database = "demo_rundemo_external"
    mongo.drop_database(database)
    env = site_env(MONGO_SESSIONS_URL=with_database(mongo_url, database))
    with rundemo(env, tmp_path / "data", tmp_path / "run.log") as demo:
        assert "Using the MongoDB server of MONGO_SESSIONS_URL" in demo.output()
        assert set(demo.pids()) == {"gunicorn"}, demo.output()
        assert not (tmp_path / "data" / "mongo").exists()
        client = Client(demo.base)
        assert client.get("/counter/").json() == {"visits": 1}
        assert mongo[database][COLLECTION].find_one({"_id": client.session_key}) is not None
