"""The clients the package holds: bounded however many event loops a process runs.

Each event loop that uses the async methods gets its own AsyncMongoClient; a
loop ended by ``asyncio.run``, ``asyncio.Runner`` or asgiref's
``async_to_sync`` closes it, a loop closed otherwise is swept, and idle loops
beyond a small number lose theirs. Figures are printed with ``-s``.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymongo
import pytest
from asgiref.sync import async_to_sync
from pymongo.errors import InvalidOperation

from mongo_sessions import connection
from mongo_sessions.operation import mongo_operation
from mongo_sessions.session import SessionStore
from tests.http_client import Client
from tests.servers import one_module_site
from tests.support import requires_async_api

RUNS = 200


@dataclass(frozen=True)
class Held:
    """What this process holds at one moment."""

    async_clients: int
    file_descriptors: int
    threads: int
    server_connections: int


def held(mongo_client: pymongo.MongoClient[Any]) -> Held:
    gc.collect()
    return Held(
        async_clients=sum(1 for o in gc.get_objects() if type(o) is pymongo.AsyncMongoClient),
        file_descriptors=len(os.listdir("/proc/self/fd")),
        threads=threading.active_count(),
        server_connections=mongo_client.admin.command("serverStatus")["connections"]["current"],
    )


def settled(mongo_client: pymongo.MongoClient[Any], bound: Held, timeout: float = 30) -> Held:
    """Return what is held once it is within ``bound`` (the server notices closed sockets
    when it next reads them), or as it is when ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        now = held(mongo_client)
        within = all(getattr(now, f) <= getattr(bound, f) for f in Held.__dataclass_fields__)
        if within or time.monotonic() > deadline:
            return now
        time.sleep(0.1)


def bound_after_warm_up(before: Held) -> Held:
    # No async client more than before once the loops are gone (clients that other
    # tests made may still wait for the garbage collector: they are not ours to
    # count); a little slack for what the interpreter and the tests' own client do.
    return Held(
        async_clients=before.async_clients,
        file_descriptors=before.file_descriptors + 2,
        threads=before.threads + 1,
        server_connections=before.server_connections + 2,
    )


async def session_cycle(loops: weakref.WeakSet[asyncio.AbstractEventLoop]) -> None:
    """acreate, aload, asave, adelete: every kind of async operation."""
    loops.add(asyncio.get_running_loop())
    session = SessionStore()
    await session.aset("n", 1)
    await session.acreate()
    again = SessionStore(session.session_key)
    assert await again.aget("n") == 1
    await again.aset("n", 2)
    await again.asave()
    await again.adelete()


def warm_up(loops: weakref.WeakSet[asyncio.AbstractEventLoop]) -> None:
    """One cycle, and the indexes made: the sync client and its threads exist from now on."""
    asyncio.run(session_cycle(loops))
    assert connection.wait_for_auto_index(30)


@requires_async_api
def test_200_asyncio_runs_leave_no_client_socket_thread_or_loop(
    sessions_collection: Any, mongo_client: Any
) -> None:
    loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
    warm_up(loops)
    before = held(mongo_client)
    for _ in range(RUNS):
        asyncio.run(session_cycle(loops))
    after = settled(mongo_client, bound_after_warm_up(before))
    print(f"\n{RUNS} asyncio.run: before {before}, after {after}, loops alive {len(loops)}")
    assert after.async_clients <= before.async_clients
    assert len(loops) == 0, "the garbage collector cannot free the loops"
    assert after.file_descriptors <= before.file_descriptors + 2
    assert after.threads <= before.threads + 1
    assert after.server_connections <= before.server_connections + 2
    assert len(connection._state.loop_clients()) == 0


@requires_async_api
def test_async_to_sync_from_plain_threads_leaves_nothing_behind(
    sessions_collection: Any, mongo_client: Any
) -> None:
    # As Django runs an async view under WSGI: async_to_sync from a plain
    # thread runs it in a new event loop, in a thread of its own.
    loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
    warm_up(loops)
    before = held(mongo_client)
    cycle = async_to_sync(session_cycle)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: cycle(loops), range(100)))
    after = settled(mongo_client, bound_after_warm_up(before))
    print(f"\n100 async_to_sync on 4 threads: before {before}, after {after}")
    assert after.async_clients <= before.async_clients
    assert len(loops) == 0
    assert after.file_descriptors <= before.file_descriptors + 2
    assert after.threads <= before.threads + 1
    assert after.server_connections <= before.server_connections + 2


@requires_async_api
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_a_loop_closed_without_shutting_down_its_generators_is_swept(
    sessions_collection: Any, mongo_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # loop.close() without loop.shutdown_asyncgens(): no I/O can close the
    # client any more; the next new loop drops it, and the garbage collector
    # frees the loop and the client's sockets. pymongo's own clean-up then
    # reports "Event loop is closed" as unraisable errors: counted here, not kept
    # (pytest's hook would keep their tracebacks, and the clients with them).
    unraisable: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(repr(u.exc_value)))
    loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
    warm_up(loops)
    before = held(mongo_client)
    for _ in range(20):
        loop = asyncio.new_event_loop()
        loop.run_until_complete(session_cycle(loops))
        loop.close()
    del loop
    assert len(connection._state.loop_clients()) <= 1  # each new loop swept the one before
    asyncio.run(session_cycle(loops))
    after = settled(mongo_client, bound_after_warm_up(before))
    print(f"\n20 loops closed by hand: before {before}, after {after}")
    print(f"unraisable errors from pymongo's clean-up: {len(unraisable)}")
    assert len(connection._state.loop_clients()) == 0
    assert after.async_clients <= before.async_clients
    assert len(loops) == 0
    assert after.file_descriptors <= before.file_descriptors + 2


class LoopThread:
    """An event loop running forever in a thread of its own, as some servers keep one."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, make: Callable[[], Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(make(), self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


@pytest.fixture
def loop_threads() -> Iterator[Callable[[], LoopThread]]:
    started: list[LoopThread] = []

    def start() -> LoopThread:
        started.append(LoopThread())
        return started[-1]

    yield start
    for loop_thread in started:
        loop_thread.stop()


async def client_of_this_loop() -> pymongo.AsyncMongoClient[Any]:
    """Load an unknown session, and return the client the running loop used."""
    assert await SessionStore("u" * 32).aload() == {}
    with mongo_operation("test"):
        collection = await connection.aget_collection()
    client: pymongo.AsyncMongoClient[Any] = collection.database.client
    return client


def is_closed(loop_thread: LoopThread, client: pymongo.AsyncMongoClient[Any]) -> bool:
    async def ping() -> bool:
        try:
            await client.admin.command("ping")
        except InvalidOperation:  # "Cannot use AsyncMongoClient after close"
            return True
        return False

    return bool(loop_thread.run(ping))


def wait_until(condition: Callable[[], bool], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@requires_async_api
def test_idle_loops_beyond_the_limit_lose_their_client_on_their_own_loop(
    loop_threads: Callable[[], LoopThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A loop is idle once its last operation's time bound has passed: the loop
    # registry's clock stands still, then jumps past every bound.
    clock = [time.monotonic()]
    monkeypatch.setattr("mongo_sessions.loops.monotonic", lambda: clock[0])
    limit = connection.IDLE_LOOP_CLIENTS
    idle = [loop_threads() for _ in range(limit + 2)]
    clients = [loop_thread.run(client_of_this_loop) for loop_thread in idle]
    assert len(set(map(id, clients))) == limit + 2  # one client per loop, none closed
    clock[0] += 3600
    newest = loop_threads()
    newest.run(client_of_this_loop)
    # The two least recently used are closed, each on its own loop (an
    # AsyncMongoClient cannot even be closed from another loop).
    for loop_thread, client in zip(idle[:2], clients[:2], strict=True):
        assert wait_until(lambda lt=loop_thread, c=client: is_closed(lt, c))
    for loop_thread, client in zip(idle[2:], clients[2:], strict=True):
        assert not is_closed(loop_thread, client)
    assert wait_until(lambda: len(connection._state.loop_clients()) == limit + 1)


@requires_async_api
def test_reset_closes_each_loop_client_on_its_own_loop(
    loop_threads: Callable[[], LoopThread],
) -> None:
    loop_thread = loop_threads()
    client = loop_thread.run(client_of_this_loop)
    connection.reset()
    assert wait_until(lambda: is_closed(loop_thread, client))
    # The same loop gets a new client from the new state.
    assert loop_thread.run(client_of_this_loop) is not client


def test_a_setting_change_closes_the_client_the_package_created(settings: Any) -> None:
    SessionStore("u" * 32).load()
    client = connection.get_target().client
    settings.MONGO_SESSIONS_COLLECTION = settings.MONGO_SESSIONS_COLLECTION + "_other"
    with pytest.raises(InvalidOperation):
        client.admin.command("ping")


def test_reset_replaces_the_whole_state(sessions_collection: Any) -> None:
    SessionStore("u" * 32).load()
    old = connection._state
    connection.reset()
    assert connection._state is not old
    assert connection._state._target is None
    assert connection._state.sync_collection is None


# --- gunicorn with threads serving an async view: each request runs in a loop of its own ---

GTHREAD_APP = '''
"""An async view under WSGI: Django runs it in a new event loop per request."""

import os
import threading

from tests.wsgi_site import configure

configure("gthread-test", __name__)

from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402


async def visit(request):
    visits = await request.session.aget("visits", 0) + 1
    await request.session.aset("visits", visits)  # saved by the middleware, in sync code
    return JsonResponse(
        {
            "visits": visits,
            "fds": len(os.listdir("/proc/self/fd")),
            "threads": threading.active_count(),
        }
    )


urlpatterns = [path("visit/", visit)]

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
'''

BROWSERS = 4
REQUESTS = 300
WARM_UP = 40


@pytest.fixture
def gthread_site(tmp_path: Path, settings: Any) -> Iterator[str]:
    """gunicorn -k gthread serving GTHREAD_APP on a free loopback port; yield its base URL."""
    args = ["--worker-class", "gthread", "--threads", str(BROWSERS), "--timeout", "60"]
    site = one_module_site(
        tmp_path, "gthread_app", GTHREAD_APP, settings, args=args, probe_path="/visit/"
    )
    with site:
        yield site.url
    assert "Traceback" not in (tmp_path / "gunicorn.log").read_text(errors="replace")


def alone(site: str) -> dict[str, int]:
    """Visit ``site`` once with a new browser, no other request in flight; return its answer."""
    response = Client(site, timeout=30).get("/visit/")
    assert response.status == 200, response.body[:500]
    answer: dict[str, int] = response.json()
    return answer


@requires_async_api
@pytest.mark.slow
def test_gunicorn_gthread_async_view_keeps_server_connections_flat(
    gthread_site: str, mongo_client: Any
) -> None:
    browsers = [Client(gthread_site, timeout=30) for _ in range(BROWSERS)]

    def browse(client: Client, count: int) -> list[dict[str, int]]:
        answers = []
        for _ in range(count):
            response = client.get("/visit/")
            assert response.status == 200, response.body[:500]
            answers.append(response.json())
        return answers  # type: ignore[return-value]

    def connections() -> int:
        return int(mongo_client.admin.command("serverStatus")["connections"]["current"])

    with ThreadPoolExecutor(BROWSERS) as pool:
        warm = list(pool.map(browse, browsers, [WARM_UP // BROWSERS] * BROWSERS))
    for answers in warm:
        assert [a["visits"] for a in answers] == list(range(1, WARM_UP // BROWSERS + 1))
    after_warm_up = connections()
    # The worker's descriptors and threads, read with no other request in flight
    # (each request in flight holds an event loop of its own, and its sockets).
    last_warm = alone(gthread_site)
    with ThreadPoolExecutor(BROWSERS) as pool:
        rest = list(pool.map(browse, browsers, [(REQUESTS - WARM_UP) // BROWSERS] * BROWSERS))
    for answers in rest:  # each browser saw its own count go up by one per request
        assert [a["visits"] for a in answers] == list(
            range(WARM_UP // BROWSERS + 1, REQUESTS // BROWSERS + 1)
        )
    # The server notices a closed connection when it next reads it: wait for that.
    assert wait_until(lambda: connections() <= after_warm_up + 2)
    final = connections()
    last = alone(gthread_site)
    print(
        f"\n{REQUESTS} requests to an async view (gthread, {BROWSERS} threads): server "
        f"connections {after_warm_up} after {WARM_UP}, {final} at the end; worker fds "
        f"{last_warm['fds']} -> {last['fds']}, threads {last_warm['threads']} -> {last['threads']}"
    )
    assert last["fds"] <= last_warm["fds"] + 2
    assert last["threads"] <= last_warm["threads"] + 1
