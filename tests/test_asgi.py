"""Async end to end: under uvicorn, a request's session load and save use the async client only."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymongo
import pytest
import requests

from mongo_sessions.testing import CommandCounter
from tests.servers import DEMO_MANAGE_PY, REPO_ROOT, demo_env, free_port
from tests.support import TEST_DB, requires_async_api

START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


@dataclass
class AsgiSite:
    """tests/asgi_site served by uvicorn on 127.0.0.1."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def counts(self) -> dict[str, list[str]]:
        answer: dict[str, list[str]] = requests.get(f"{self.base_url}/_counts/", timeout=15).json()
        return answer

    def reset_counts(self) -> None:
        requests.get(f"{self.base_url}/_counts/reset/", timeout=15).raise_for_status()


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "django", *args], env=env, cwd=REPO_ROOT, check=True,
        timeout=120, capture_output=True,
    )  # fmt: skip


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
    port = free_port()
    log_path = tmp_path / "uvicorn.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "tests.asgi_site.asgi:application",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    site = AsgiSite(f"http://127.0.0.1:{port}", process, log_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"uvicorn exited: {log_path.read_text()[-3000:]}")
            try:
                site.counts()
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield site
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)


@pytest.fixture
def asgi_site(mongo_url: str, sessions_collection: Any, tmp_path: Path) -> Iterator[AsgiSite]:
    yield from start_site(mongo_url, sessions_collection.name, tmp_path)


def browse(site: AsgiSite) -> list[Any]:
    """Log in, count visits, read, use request.user from sync and async views, log out."""
    browser = requests.Session()
    url = site.base_url

    def get(path: str) -> Any:
        response = browser.get(url + path, timeout=15)
        response.raise_for_status()
        return response.json()

    answers = [browser.post(url + "/login/", {"username": "alice", "password": "pw"}, timeout=15)]
    answers[0].raise_for_status()
    answers += [get("/counter/") for _ in range(3)]
    answers += [get("/read/") for _ in range(5)]
    answers += [get("/sync-read/"), get("/whoami/")]
    logout = browser.post(url + "/logout/", timeout=15)
    logout.raise_for_status()
    answers += [get("/read/"), get("/whoami/")]
    return answers


def warm_up(site: AsgiSite) -> None:
    # The first use creates the collection's indexes: not part of what is counted.
    requests.get(site.base_url + "/counter/", timeout=15).raise_for_status()
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
        ["insert", "update"]  # login: the new key, then the saved login
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
    for site in start_site(
        mongo_url, sessions_collection.name, tmp_path, ASGI_SITE_DJANGO_MIDDLEWARE="1"
    ):
        warm_up(site)
        browse(site)
        counts = site.counts()
        assert counts["sync"].count("update") == 4  # the login's save and three counter visits
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
    port = free_port()
    log_path = tmp_path / "rundemo.log"
    env = demo_env(MONGO_SESSIONS_URL=mongo_url.rstrip("/") + f"/{database}")
    command = [
        sys.executable, str(DEMO_MANAGE_PY), "rundemo", "--asgi",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--data-dir", str(tmp_path / "data"),
    ]  # fmt: skip
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while "Demo running at" not in log_path.read_text(errors="replace"):
            assert process.poll() is None, log_path.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        assert "uvicorn pid" in log_path.read_text()
        laptop = requests.Session()
        laptop.headers.update({"Accept": "application/json", "User-Agent": "Laptop/1.0"})
        laptop.get(f"{base}/login/", timeout=15)
        csrf = {"X-CSRFToken": laptop.cookies["csrftoken"]}
        login = {"username": "demo", "password": "demo-password"}
        assert laptop.post(f"{base}/login/", login, headers=csrf, timeout=15).json() == {
            "user": "demo"
        }
        assert [laptop.get(f"{base}/counter/", timeout=15).json()["visits"] for _ in range(2)] == [
            1,
            2,
        ]
        phone = requests.Session()
        phone.headers.update({"Accept": "application/json", "User-Agent": "Phone/2.0"})
        phone.get(f"{base}/login/", timeout=15)
        phone.post(
            f"{base}/login/", login, headers={"X-CSRFToken": phone.cookies["csrftoken"]}, timeout=15
        )
        page = laptop.get(f"{base}/account/sessions/", headers={"Accept": "text/html"}, timeout=15)
        assert page.status_code == 200
        assert "Laptop/1.0" in page.text and "Phone/2.0" in page.text
        assert "127.0.0.0/24" in page.text
        csrf = {"X-CSRFToken": laptop.cookies["csrftoken"]}  # rotated by the login
        ended = laptop.post(f"{base}/account/sessions/end-others/", headers=csrf, timeout=15)
        assert ended.status_code == 200  # redirected back to the list
        assert phone.get(f"{base}/login/", timeout=15).json() == {"user": None}
        assert laptop.get(f"{base}/login/", timeout=15).json() == {"user": "demo"}
        stored = mongo_client[database]["mongo_sessions"].find_one(
            {"_id": laptop.cookies["sessionid"]}
        )
        assert stored["user_agent"] == "Laptop/1.0"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        mongo_client.drop_database(database)
