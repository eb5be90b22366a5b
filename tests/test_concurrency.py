"""Concurrency: many creators at once, logout racing a save, two saves of one session,
and gunicorn --preload with the client touched before the fork.

Every session written here carries a marker of its own writer, so that a
duplicate key or one session overwriting another shows up as a wrong marker or
a missing document, not just as a count.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.contrib.sessions.backends.base import UpdateError

from mongo_sessions import connection
from mongo_sessions.session import SessionStore
from tests.http_client import Client
from tests.servers import one_module_site

THREADS = 32
CREATES_PER_THREAD = 50
PROCESSES = 4
CREATES_PER_PROCESS = 100
RACE_ITERATIONS = 150
SAMPLE_LOADS = 100  # keys read back through SessionStore.load() (all are decoded)


def create_sessions(label: str, count: int) -> list[tuple[str, str]]:
    """Create ``count`` sessions, each holding its own marker; return (key, marker) pairs."""
    created = []
    for i in range(count):
        store = SessionStore()
        marker = f"{label}/{i}"
        store["marker"] = marker
        store.save()
        assert store.session_key is not None
        created.append((store.session_key, marker))
    return created


def assert_each_session_holds_its_marker(
    created: list[tuple[str, str]], sessions_collection: Any
) -> None:
    keys = [key for key, _ in created]
    assert len(set(keys)) == len(keys), "two writers were given the same key"
    assert sessions_collection.count_documents({}) == len(created)
    decoder = SessionStore()
    stored = {doc["_id"]: decoder.decode(doc["data"]) for doc in sessions_collection.find()}
    wrong = [key for key, marker in created if stored.get(key) != {"marker": marker}]
    assert not wrong, f"{len(wrong)} sessions do not hold their own marker"
    for key, marker in random.Random(0).sample(created, min(SAMPLE_LOADS, len(created))):
        assert SessionStore(key).load() == {"marker": marker}


def test_many_threads_create_sessions_at_once(sessions_collection: Any) -> None:
    connection.reset()  # the threads race for the first client and index creation too
    barrier = threading.Barrier(THREADS)

    def worker(thread_id: int) -> list[tuple[str, str]]:
        barrier.wait()
        return create_sessions(f"thread-{thread_id}", CREATES_PER_THREAD)

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(worker, range(THREADS)))

    created = [pair for result in results for pair in result]
    assert len(created) == THREADS * CREATES_PER_THREAD
    assert_each_session_holds_its_marker(created, sessions_collection)


def create_in_child(
    url: str, collection: str, label: str, count: int, barrier: Any, results: Any
) -> None:
    """Run in a child process (fork or spawn): configure Django if needed, then create."""
    import warnings

    import django
    from django.apps import apps
    from django.conf import settings

    # pymongo warns when a client created before a fork is used after it.
    warnings.filterwarnings("error", message="MongoClient opened before fork")
    if not apps.ready:  # spawn: a fresh interpreter
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
        django.setup()
    settings.MONGO_SESSIONS_URL = url
    settings.MONGO_SESSIONS_COLLECTION = collection
    barrier.wait(timeout=60)  # all children start writing together
    results.put((label, create_sessions(label, count)))


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_many_processes_create_sessions_at_once(
    start_method: str, settings: Any, sessions_collection: Any
) -> None:
    if start_method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {start_method} start method on this platform")
    # The parent's client exists before the fork: children must not share it.
    SessionStore().save()
    sessions_collection.delete_many({})
    context: Any = multiprocessing.get_context(start_method)
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    children = [
        context.Process(
            target=create_in_child,
            args=(
                settings.MONGO_SESSIONS_URL,
                settings.MONGO_SESSIONS_COLLECTION,
                f"{start_method}-{n}",
                CREATES_PER_PROCESS,
                barrier,
                results,
            ),
        )
        for n in range(PROCESSES)
    ]
    for child in children:
        child.start()
    try:
        per_child = dict(results.get(timeout=120) for _ in children)
    finally:
        for child in children:
            child.join(timeout=30)
            if child.is_alive():
                child.kill()
    assert [child.exitcode for child in children] == [0] * PROCESSES

    created = [pair for result in per_child.values() for pair in result]
    assert len(created) == PROCESSES * CREATES_PER_PROCESS
    assert_each_session_holds_its_marker(created, sessions_collection)


def race(first: Any, second: Any) -> tuple[Any, Any]:
    """Run two callables at the same moment; return what each returned or raised."""
    barrier = threading.Barrier(2)
    outcome: list[Any] = [None, None]

    def run(index: int, action: Any) -> None:
        barrier.wait()
        try:
            outcome[index] = action()
        except Exception as e:
            outcome[index] = e

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcome[0], outcome[1]


@pytest.mark.parametrize("logout", ["delete", "flush"])
def test_logout_racing_a_save_never_resurrects_the_session(
    logout: str, sessions_collection: Any
) -> None:
    outcomes: Counter[str] = Counter()
    for i in range(RACE_ITERATIONS):
        original = SessionStore()
        original["cart"] = {"apple": i}
        original.save()
        key = original.session_key
        saving = SessionStore(key)
        saving["cart"] = {"apple": i + 1}  # loaded, changed: the next save is an update
        leaving = SessionStore(key)
        leaving.load()

        saved, _ = race(saving.save, getattr(leaving, logout))

        if isinstance(saved, UpdateError):
            outcomes["save came second: UpdateError"] += 1
        elif saved is None:
            outcomes["save came first, then deleted"] += 1
        else:
            raise AssertionError(f"unexpected outcome of the save: {saved!r}")
        assert sessions_collection.find_one({"_id": key}) is None, f"iteration {i} resurrected"
        assert SessionStore(key).load() == {}
    print(f"\nlogout by {logout} racing a save, {RACE_ITERATIONS} iterations: {dict(outcomes)}")
    assert sessions_collection.count_documents({}) == 0


def test_two_saves_of_one_session_leave_one_complete_version(sessions_collection: Any) -> None:
    versions = {
        "A": {"version": "A", "cart": {"apple": 3}, "notes": ["a"] * 200, "only_a": True},
        "B": {"version": "B", "cart": {"bread": 1}, "notes": ["b"] * 300, "only_b": 2},
    }
    winners: Counter[str] = Counter()
    for i in range(RACE_ITERATIONS):
        original = SessionStore()
        original["version"] = "original"
        original.save()
        key = original.session_key
        writers = {}
        for name, data in versions.items():
            writer = SessionStore(key)
            writer.clear()
            writer.update(data)
            writers[name] = writer

        first, second = race(writers["A"].save, writers["B"].save)

        assert first is None and second is None
        stored = SessionStore(key).load()
        winner = stored.get("version")
        assert winner in versions and stored == versions[winner], f"iteration {i}: a mix"
        winners[winner] += 1
    print(f"\ntwo concurrent saves, {RACE_ITERATIONS} iterations, last writer: {dict(winners)}")
    assert sessions_collection.count_documents({}) == RACE_ITERATIONS


# --- gunicorn --preload: the client is touched in the master, before the fork ------

PRELOAD_APP = '''
"""A tiny site served by gunicorn --preload: it pings MongoDB at import time."""

import json
import os
import time

from tests.wsgi_site import configure

configure("preload-test", __name__)

from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

from mongo_sessions import connection  # noqa: E402

# Touch the client in the gunicorn master, before it forks the workers.
connection.ping()
connection.get_collection()
IMPORTED_IN = os.getpid()


def counter(request):
    visits = request.session.get("visits", 0) + 1
    request.session["visits"] = visits
    pids = request.session.get("pids", []) + [os.getpid()]
    request.session["pids"] = pids
    time.sleep(0.02)  # keep the worker busy so that the others take requests too
    return JsonResponse({"visits": visits, "pid": os.getpid(), "imported_in": IMPORTED_IN})


urlpatterns = [path("counter/", counter)]

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
'''

CLIENTS = 8
REQUESTS_PER_CLIENT = 10


@pytest.fixture
def preloaded_gunicorn(tmp_path: Path, settings: Any) -> Iterator[tuple[str, int, Path]]:
    log_path = tmp_path / "gunicorn.log"
    site = one_module_site(
        tmp_path,
        "preload_app",
        PRELOAD_APP,
        settings,
        workers=3,
        args=["--preload", "--timeout", "30", "--graceful-timeout", "5"],
        probe_path="/counter/",
    )
    site.stop_signal = signal.SIGINT  # gunicorn's quick shutdown
    with site:
        assert site.pid is not None
        yield site.url, site.pid, log_path


@pytest.mark.slow
def test_gunicorn_preload_with_client_touched_before_fork(
    preloaded_gunicorn: tuple[str, int, Path], sessions_collection: Any
) -> None:
    base, master_pid, log_path = preloaded_gunicorn
    sessions_collection.delete_many({})  # the readiness probe's session

    def browse(_: int) -> list[dict[str, Any]]:
        client = Client(base, timeout=15)
        answers = []
        for _ in range(REQUESTS_PER_CLIENT):
            response = client.get("/counter/")
            assert response.status == 200, response.body[:500]
            answers.append(json.loads(response.body))
        return answers

    with ThreadPoolExecutor(CLIENTS) as pool:
        per_client = list(pool.map(browse, range(CLIENTS)))

    worker_pids = set()
    for answers in per_client:
        # Each request saw the previous one's write, whichever worker served it.
        assert [a["visits"] for a in answers] == list(range(1, REQUESTS_PER_CLIENT + 1))
        assert {a["imported_in"] for a in answers} == {master_pid}
        worker_pids |= {a["pid"] for a in answers}
    assert master_pid not in worker_pids
    assert len(worker_pids) >= 2, f"only worker(s) {worker_pids} answered"
    assert sessions_collection.count_documents({}) == CLIENTS
    log = log_path.read_text(errors="replace")
    assert "opened before fork" not in log, "a worker used the master's MongoClient"
    assert "Traceback" not in log
    print(f"\n{CLIENTS * REQUESTS_PER_CLIENT} requests served by workers {sorted(worker_pids)}")
