"""Recovery: once the server answers again, the next operation succeeds.

Two faults that used to outlast their cause by about ten seconds:

* a server that hung (SIGSTOP) longer than ``MONGO_SESSIONS_TIMEOUT`` while
  requests kept coming, then resumed (SIGCONT): pymongo's round-trip estimate,
  taken during the pause, made every operation fail at once
  ("remaining timeout <= network round trip time") until a later heartbeat;
* one step-down error (``NotWritablePrimary`` with the ``RetryableWriteError``
  label): pymongo's streaming monitor waited for the next heartbeat before the
  server could be selected again.

The package's clients poll the server every 500 ms (``serverMonitoringMode``
``poll``, ``heartbeatFrequencyMS`` 500); see the README's "Recovery after a
hung server or a step-down" for the measurements behind that choice. The
pause test runs on a server of its own (``-m slow``: 30 pauses, about 6 min).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pymongo
import pytest

from mongo_sessions.exceptions import SessionStoreError, SessionStoreUnavailable
from mongo_sessions.session import SessionStore
from tests.faults import FailCommand
from tests.servers import ServerProcess, remove_storage, temporary_storage, wait_for_ping
from tests.support import TEST_DB

TRIALS = 10
# The pause lasts this much longer than the timeout: long enough for pymongo's
# monitor to fail a connection attempt of its own (connectTimeoutMS, 5 s by the
# package's default) and start another, which ends after the pause. That is
# when the round-trip estimate used to be poisoned.
PAUSE_BEYOND_TIMEOUT = 7.0
TRAFFIC_THREADS = 4  # requests keep coming during the pause
RESUME_TO_LOAD = 1.0  # the load under test starts this long after SIGCONT
NOT_WRITABLE_PRIMARY = 10107


@dataclass(frozen=True)
class Outcome:
    ok: bool
    load_seconds: float
    traffic_failures: int
    error: str = ""


@pytest.fixture(scope="module")
def own_server() -> Iterator[ServerProcess]:
    """A server of this module's own: the tests stop and resume its process."""
    storage = temporary_storage()
    server = ServerProcess(storage_path=storage / "data").start()
    try:
        wait_for_ping(server.url)
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            os.kill(server.process.pid, signal.SIGCONT)  # a stopped process cannot stop
        server.stop()
        remove_storage(storage)


@pytest.fixture
def on_own_server(settings: Any, own_server: ServerProcess) -> Iterator[str]:
    """Point the package at a fresh collection on the module's server."""
    name = f"recovery_{uuid.uuid4().hex[:12]}"
    settings.MONGO_SESSIONS_URL = own_server.url + TEST_DB
    settings.MONGO_SESSIONS_COLLECTION = name
    yield name
    with pymongo.MongoClient(own_server.url, serverSelectionTimeoutMS=5000) as client:
        client[TEST_DB][name].drop()


def wait_until_loads_work(key: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            SessionStore(key).load()
            return
        except SessionStoreError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def pause_then_load(server: ServerProcess, key: str, timeout: float) -> Outcome:
    """Stop the server longer than the timeout under traffic, resume it, load 1 s later."""
    assert server.process is not None
    stop_traffic = threading.Event()
    failures: list[BaseException] = []

    def traffic() -> None:
        while not stop_traffic.is_set():
            try:
                SessionStore(key).load()
            except SessionStoreUnavailable as e:
                failures.append(e)

    threads = [threading.Thread(target=traffic) for _ in range(TRAFFIC_THREADS)]
    os.kill(server.process.pid, signal.SIGSTOP)
    paused_at = time.monotonic()
    try:
        for thread in threads:
            thread.start()
        # The pause is seen: a request failed at its timeout.
        deadline = paused_at + timeout + 30
        while not failures and time.monotonic() < deadline:
            time.sleep(0.05)
        assert failures, "no request failed while the server was stopped"
        time.sleep(max(0.0, paused_at + timeout + PAUSE_BEYOND_TIMEOUT - time.monotonic()))
    finally:
        stop_traffic.set()
        os.kill(server.process.pid, signal.SIGCONT)
    resumed_at = time.monotonic()
    time.sleep(max(0.0, resumed_at + RESUME_TO_LOAD - time.monotonic()))
    started = time.monotonic()
    try:
        ok, error = SessionStore(key).load() == {"n": 1}, ""
    except SessionStoreError as e:
        ok, error = False, str(e)
    load_seconds = time.monotonic() - started
    for thread in threads:
        thread.join(timeout=timeout + 30)
    return Outcome(ok, load_seconds, len(failures), error)


@pytest.mark.slow
@pytest.mark.parametrize("timeout", [1, 2, 5])
def test_the_first_load_after_a_hung_server_resumes_succeeds(
    timeout: int, settings: Any, own_server: ServerProcess, on_own_server: str
) -> None:
    settings.MONGO_SESSIONS_TIMEOUT = timeout
    session = SessionStore()
    session["n"] = 1
    session.create()
    key = session.session_key or ""
    outcomes = []
    for _ in range(TRIALS):
        wait_until_loads_work(key)
        outcomes.append(pause_then_load(own_server, key, timeout))
    print(
        f"\nMONGO_SESSIONS_TIMEOUT={timeout}: pause {timeout + PAUSE_BEYOND_TIMEOUT:.0f} s, "
        f"load {RESUME_TO_LOAD:.0f} s after SIGCONT succeeded in "
        f"{sum(o.ok for o in outcomes)}/{TRIALS}; load times "
        f"{[round(o.load_seconds, 3) for o in outcomes]}; requests failed during each pause "
        f"{[o.traffic_failures for o in outcomes]}"
    )
    assert [o.error for o in outcomes if not o.ok] == []


@pytest.fixture
def step_down(mongo_client: pymongo.MongoClient[Any], settings: Any) -> Iterator[FailCommand]:
    """failCommand for the package's client (an appname of its own); off after the test."""
    app_name = f"recovery-{uuid.uuid4().hex[:10]}"
    settings.MONGO_SESSIONS_CLIENT_OPTIONS = {"appname": app_name}
    failpoint = FailCommand(mongo_client, app_name)
    reason = failpoint.refusal()
    if reason is not None:
        pytest.skip(reason)
    yield failpoint
    failpoint.off()


def test_loads_work_again_a_second_after_a_step_down(step_down: FailCommand, settings: Any) -> None:
    settings.MONGO_SESSIONS_TIMEOUT = 1
    session = SessionStore()
    session["n"] = 1
    session.create()
    key = session.session_key or ""
    saves = []
    for trial in range(5):
        step_down.arm(
            ["update"],
            mode={"times": 1},
            errorCode=NOT_WRITABLE_PRIMARY,
            errorLabels=["RetryableWriteError"],
        )
        store = SessionStore(key)
        store["n"] = 1  # unchanged data: the save is only a vehicle for the error
        try:
            store.save()
            saves.append("retried and saved")
        except SessionStoreError:
            saves.append("failed")
        time.sleep(1.0)  # the load under test starts a second after the error
        assert SessionStore(key).load() == {"n": 1}, f"trial {trial}"
    print(f"\nsave after one step-down error, 5 trials: {saves}")
