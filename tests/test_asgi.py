"""Async end to end: under uvicorn, a request's session load and save use the async client only."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymongo
import pytest

from mongo_sessions.testing import CommandCounter
from tests.http_client import Client
from tests.servers import (
    REPO_ROOT,
    ChildProcess,
    asgi_test_site,
    demo_env,
    pid_alive,
    rundemo,
    with_database,
)
from tests.support import TEST_DB, requires_async_api


@dataclass
class AsgiSite:
    """tests/asgi_site served by uvicorn on 127.0.0.1."""

    child: ChildProcess

    @property
    def base_url(self) -> str:
        return self.child.url

    def counts(self) -> dict[str, list[str]]:
        answer: dict[str, list[str]] = Client(self.base_url).get("/_counts/").json()
        return answer

    def reset_counts(self) -> None:
        assert Client(self.base_url).get("/_counts/reset/").status == 200


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "django", *args], env=env, cwd=REPO_ROOT, check=True,
        timeout=120, capture_output=True,
    )  # fmt: skip


@contextlib.contextmanager
def start_site(
    mongo_url: str, collection: str, tmp_path: Path, **env_extra: str
) -> Iterator[AsgiSite]:
    env = demo_env(
        DJANGO_SETTINGS_MODULE="tests.asgi_site.settings",
        PYTHONPATH=str(REPO_ROOT),
        ASGI_SITE_SQLITE=str(tmp_path / "users.sqlite3"),
        ASGI_SITE_MONGO_URL=mongo_url.rstrip("/") + f"/{TEST_DB}",
        ASGI_SITE_COLLECTION=collection,
        **env_extra,
    )
    _manage(env, "migrate", "--verbosity", "0")
    _manage(env, "shell", "-c", "from django.contrib.auth.models import User; "
            "User.objects.create_user('alice', password='pw')")  # fmt: skip
    with asgi_test_site(env, tmp_path / "uvicorn.log") as child:
        yield AsgiSite(child)


@pytest.fixture
def asgi_site(mongo_url: str, sessions_collection: Any, tmp_path: Path) -> Iterator[AsgiSite]:
    with start_site(mongo_url, sessions_collection.name, tmp_path) as site:
        yield site


def browse(site: AsgiSite) -> list[Any]:
    """Log in, count visits, read, use request.user from sync and async views, log out."""
    browser = Client(site.base_url)

    def get(path: str) -> Any:
        response = browser.get(path)
        assert response.status == 200, (path, response.text)
        return response.json()

    # The site's login and logout are CSRF-exempt: POST them directly (no page GET first).
    credentials = {"username": "alice", "password": "pw"}
    answers: list[Any] = [browser.request("POST", "/login/", credentials)]
    assert answers[0].status == 200, answers[0].text
    answers += [get("/counter/") for _ in range(3)]
    answers += [get("/read/") for _ in range(5)]
    answers += [get("/sync-read/"), get("/whoami/")]
    logout = browser.request("POST", "/logout/")
    assert logout.status == 200, logout.text
    answers += [get("/read/"), get("/whoami/")]
    return answers


def warm_up(site: AsgiSite) -> None:
    # The first use creates the collection's indexes: not part of what is counted.
    assert Client(site.base_url).get("/counter/").status == 200
    site.reset_counts()


@requires_async_api  # the site's views use the async session and auth API
def test_under_uvicorn_the_sync_client_sends_nothing(asgi_site: AsgiSite) -> None:
    warm_up(asgi_site)
    answers = browse(asgi_site)
    assert [a["visits"] for a in answers[1:4]] == [1, 2, 3]
    assert [a["visits"] for a in answers[4:9]] == [3] * 5
    assert answers[9] == {"visits": 3, "user": "alice"}  # sync view: session already loaded
    assert answers[10] == {"user": "alice"}
    assert answers[11:] == [{"visits": None}, {"user": None}]
    counts = asgi_site.counts()
    assert counts["sync"] == []
    assert counts["async"] == (
        # login: the new key (provisional), the saved login, its lasting expiry
        ["insert", "update", "update"]
        + ["find", "update"] * 3  # counter
        + ["find"] * 5  # reads within the touch window: no write
        + ["find", "find"]  # sync-read, whoami
        + ["find", "delete"]  # logout
    )


@requires_async_api
def test_django_middleware_under_uvicorn_saves_with_the_sync_client(
    mongo_url: str, sessions_collection: Any, tmp_path: Path
) -> None:
    """The comparison: Django's SessionMiddleware saves from a worker thread, sync client."""
    with start_site(
        mongo_url, sessions_collection.name, tmp_path, ASGI_SITE_DJANGO_MIDDLEWARE="1"
    ) as site:
        warm_up(site)
        browse(site)
        counts = site.counts()
        # the login's save and its lasting expiry, and three counter visits
        assert counts["sync"].count("update") == 5
        assert "find" in counts["async"]


async def test_counter_per_client(mongo_url: str) -> None:
    sync_counter, async_counter = CommandCounter("sync"), CommandCounter("async")
    listeners = [sync_counter, async_counter]
    with pymongo.MongoClient(mongo_url, event_listeners=listeners) as client:
        client[TEST_DB]["counted"].find_one({})
    async with pymongo.AsyncMongoClient(mongo_url, event_listeners=listeners) as aclient:
        await aclient[TEST_DB]["counted"].insert_one({})
        await aclient[TEST_DB]["counted"].delete_many({})
    assert sync_counter.commands == ["find"]
    assert async_counter.commands == ["insert", "delete"]
    with pytest.raises(ValueError, match="client must be"):
        CommandCounter("both")


@pytest.mark.slow
def test_rundemo_asgi_serves_the_demo_with_uvicorn(
    mongo_url: str, mongo_client: Any, tmp_path: Path
) -> None:
    """``manage.py rundemo --asgi``: uvicorn serves the demo; sessions, login and devices work."""
    database = f"demo_asgi_{uuid.uuid4().hex[:8]}"
    env = demo_env(MONGO_SESSIONS_URL=with_database(mongo_url, database))
    login = {"username": "demo", "password": "demo-password"}
    try:
        log = tmp_path / "rundemo.log"
        with rundemo(env, tmp_path / "data", log, workers=1, asgi=True) as demo:
            pids = demo.pids()
            assert set(pids) == {"uvicorn"}, demo.output()
            laptop = Client(demo.base)
            laptop.http.headers["User-Agent"] = "Laptop/1.0"
            assert laptop.post("/api/login/", login).json() == {"user": "demo"}
            assert [laptop.get("/api/counter/").json()["visits"] for _ in range(2)] == [1, 2]
            phone = Client(demo.base)
            phone.http.headers["User-Agent"] = "Phone/2.0"
            assert phone.post("/api/login/", login).json() == {"user": "demo"}
            page = laptop.get("/account/sessions/", accept="text/html")
            assert page.status == 200
            assert "Laptop/1.0" in page.text and "Phone/2.0" in page.text
            assert "127.0.0.0/24" in page.text
            # The CSRF token rotated at login: the client sends the jar's current one.
            ended = laptop.post("/account/sessions/end-others/", accept="text/html")
            assert (ended.status, ended.headers["Location"]) == (302, "/account/sessions/")
            assert laptop.get("/account/sessions/", accept="text/html").status == 200
            assert phone.get("/api/login/").json() == {"user": None}
            assert laptop.get("/api/login/").json() == {"user": "demo"}
            stored = mongo_client[database]["mongo_sessions"].find_one({"_id": laptop.session_key})
            assert stored["user_agent"] == "Laptop/1.0"
            assert demo.stop() == 0, demo.output()
        assert "Demo stopped." in demo.output()
        assert not pid_alive(pids["uvicorn"]), "uvicorn still running after rundemo stopped"
    finally:
        mongo_client.drop_database(database)
