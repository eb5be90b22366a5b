"""The demo stack under load while its MongoDB server is killed (SIGKILL) and restarted.

A SecantusDB server of the test's own keeps its data on disk; the demo
(``manage.py rundemo`` with MONGO_SESSIONS_URL set, so only gunicorn is started)
serves it. Threads act as browsers, each with sessions of their own, doing
counter and cart writes, and record every acknowledged write (a 200 with the
expected JSON). Mid-run the server is killed with SIGKILL and restarted on the
same port and data. Then:

* before any new write, every session with an acknowledged write is read back
  from the restarted server: it is there, with the data of its last
  acknowledgement (or of a later write that landed although its request
  failed: never less);
* during the outage requests fail fast: a 5xx within the timeout plus a margin,
  none hangs;
* the site recovers without restarting gunicorn, and every session goes on
  from where its last acknowledgement left it.

The server runs with ``--sync-on-commit``: without it SecantusDB, like mongod
with ``j: false``, acknowledges a write before it reaches the disk, and a
SIGKILL loses the last few (run with RESTART_TEST_FLAGS="" to see it).
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mongo_sessions.session import SessionStore
from tests.http_client import Client
from tests.servers import DEMO_API, ChildProcess, demo_env, rundemo_process, test_mongo_server

pytestmark = pytest.mark.slow

THREADS = 4
SESSIONS_PER_THREAD = 4
# One gunicorn (sync) worker per load thread: a request never queues behind
# another one's timeout, so the latency seen is the server's own.
WORKERS = THREADS
TIMEOUT = 1.0  # MONGO_SESSIONS_TIMEOUT of the demo, seconds
MARGIN = 2.0  # a failed request must be answered within TIMEOUT + MARGIN
WARM_UP = 3.0
OUTAGE = 3.0
AFTER_RECOVERY = 3.0
RECOVERY_LIMIT = 20.0
ITEMS = ("apple", "bread", "coffee")
SERVER_FLAGS = os.environ.get("RESTART_TEST_FLAGS", "--sync-on-commit").split()


def cart_within(before: Counter[str], pending: Counter[str], after: Counter[str]) -> bool:
    """Whether ``after`` is ``before`` plus some of the ``pending`` adds."""
    return all(before[i] <= after[i] <= before[i] + pending[i] for i in {*before, *after})


@dataclass
class Browser:
    """One session, as a browser holds it, and what the server acknowledged of it."""

    client: Client
    key: str | None = None
    visits: int = 0  # from the last acknowledged /counter/
    cart: Counter[str] = field(default_factory=Counter)  # from the last acknowledged add
    pending_visits: int = 0  # counter requests since that ack whose fate is unknown
    pending_items: Counter[str] = field(default_factory=Counter)
    acknowledged: int = 0
    acknowledged_after_restart: int = 0
    violations: list[str] = field(default_factory=list)

    def holds(self, stored: dict[str, Any]) -> tuple[bool, bool]:
        """Whether ``stored`` is consistent with the acknowledgements, and exactly them."""
        visits, cart = stored.get("visits", 0), Counter(stored.get("cart", {}))
        consistent = self.visits <= visits <= self.visits + self.pending_visits and cart_within(
            self.cart, self.pending_items, cart
        )
        return consistent, visits == self.visits and cart == self.cart


@dataclass
class Failure:
    started: float
    elapsed: float
    status: int | None  # None: no HTTP answer (connection error or client timeout)


@dataclass
class Run:
    browsers: list[Browser]
    stop: threading.Event = field(default_factory=threading.Event)
    paused: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    idle: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    failures: list[Failure] = field(default_factory=list)
    restarted_at: float = float("inf")


def act(run: Run, browser: Browser, rng: random.Random) -> None:
    """One request: a counter visit or a cart add, checked against what was acknowledged."""
    client = browser.client
    item = rng.choice(ITEMS) if browser.key and rng.random() < 0.5 else None
    started = time.monotonic()
    try:
        if item is None:
            response = client.request("GET", f"{DEMO_API}/counter/")
        else:
            response = client.request("POST", f"{DEMO_API}/cart/add/", {"item": item})
    except OSError:
        response = None
    elapsed = time.monotonic() - started
    key = client.cookies.get("sessionid")
    with run.lock:
        if response is None or response.status != 200:
            run.failures.append(Failure(started, elapsed, response.status if response else None))
            if item is None:
                browser.pending_visits += 1
            else:
                browser.pending_items[item] += 1
            return
        body: Any = response.json()
        if browser.key is not None and key != browser.key:
            browser.violations.append(f"session {browser.key[:6]}... replaced by a new one")
        if item is None:
            low, high = browser.visits + 1, browser.visits + 1 + browser.pending_visits
            if not low <= body["visits"] <= high:
                browser.violations.append(f"visits {body['visits']}, expected {low}..{high}")
            browser.visits, browser.pending_visits = body["visits"], 0
        else:
            cart = Counter(body["cart"])
            pending = browser.pending_items + Counter({item: 1})
            if not cart_within(browser.cart, pending, cart) or cart[item] <= browser.cart[item]:
                browser.violations.append(f"cart {dict(cart)} after {dict(browser.cart)}")
            browser.cart, browser.pending_items = cart, Counter()
        browser.key = key
        browser.acknowledged += 1
        if started > run.restarted_at:
            browser.acknowledged_after_restart += 1


def load(run: Run, browsers: list[Browser], seed: int) -> None:
    """A load thread: its browsers in turn, each starting with a GET (CSRF cookie, session)."""
    rng = random.Random(seed)
    while not run.stop.is_set():
        for browser in browsers:
            if run.paused.is_set():
                run.idle.release()
                while run.paused.is_set() and not run.stop.is_set():
                    time.sleep(0.02)
            if run.stop.is_set():
                return
            act(run, browser, rng)


def verify_stored(run: Run) -> dict[str, int]:
    """Read every acknowledged session back through the package, in this process."""
    counts: Counter[str] = Counter()
    for browser in run.browsers:
        if not browser.acknowledged:
            continue
        counts["acknowledged"] += 1
        stored = SessionStore(browser.key).load()
        if not stored:
            counts["missing"] += 1
            continue
        counts["found"] += 1
        consistent, exact = browser.holds(stored)
        counts["exact" if exact else "newer" if consistent else "behind"] += 1
    return dict(counts)


@pytest.fixture
def mongo_on_disk(tmp_path: Path) -> Iterator[ChildProcess]:
    with test_mongo_server(tmp_path / "mongo", args=SERVER_FLAGS) as server:
        yield server


def test_sessions_survive_a_server_kill_under_load(
    mongo_on_disk: ChildProcess, settings: Any, tmp_path: Path
) -> None:
    """Kill the server under load, restart it: no acknowledged write is lost, the site recovers.

    Over 60 lines on purpose: one run of load, kill, restart and recovery, in
    that order, and the figures it prints come from the same run as the assertions.
    """
    env = demo_env(
        MONGO_SESSIONS_URL=mongo_on_disk.url + "demo",
        MONGO_SESSIONS_TIMEOUT=str(TIMEOUT),
        # The same secret as the tests' settings: this process can decode the sessions.
        DJANGO_SECRET_KEY=settings.SECRET_KEY,
    )
    site = rundemo_process(
        env, tmp_path / "demo", tmp_path / "rundemo.log", WORKERS, access_log=True
    ).start()
    settings.MONGO_SESSIONS_URL = mongo_on_disk.url + "demo"
    settings.MONGO_SESSIONS_COLLECTION = "mongo_sessions"
    browsers = [Browser(Client(site.url, timeout=15)) for _ in range(THREADS * SESSIONS_PER_THREAD)]
    run = Run(browsers)
    threads = [
        threading.Thread(target=load, args=(run, browsers[i::THREADS], i), daemon=True)
        for i in range(THREADS)
    ]
    try:
        for thread in threads:
            thread.start()
        time.sleep(WARM_UP)
        with run.lock:
            acknowledged_before_kill = sum(b.acknowledged for b in browsers)
            sessions_before_kill = sum(1 for b in browsers if b.acknowledged)
        killed_at = time.monotonic()
        mongo_on_disk.kill()
        time.sleep(OUTAGE)

        # Hold the load while the server comes back, to read it before any new write.
        run.paused.set()
        for _ in threads:
            assert run.idle.acquire(timeout=TIMEOUT + MARGIN + 15), "a load thread hangs"
        mongo_on_disk.start()
        restarted_at = time.monotonic()
        health = Client(site.url, timeout=15)
        while health.get("/health/").status != 200:
            assert time.monotonic() - restarted_at < RECOVERY_LIMIT, "the site did not recover"
            time.sleep(0.05)
        recovered_after = time.monotonic() - restarted_at
        after_restart = verify_stored(run)
        run.restarted_at = time.monotonic()
        run.paused.clear()

        time.sleep(AFTER_RECOVERY)
        run.stop.set()
        for thread in threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in threads), "a load thread hangs"
        at_the_end = verify_stored(run)
        log = site.log_text()
        assert site.process is not None and site.process.poll() is None, "rundemo exited"
    finally:
        run.stop.set()
        site.stop()

    outage = [f for f in run.failures if killed_at <= f.started < restarted_at]
    slowest = max((f.elapsed for f in run.failures), default=0.0)
    statuses = Counter(f.status for f in run.failures)
    violations = [v for b in browsers for v in b.violations]
    print(
        f"\nrestart under load (server flags: {' '.join(SERVER_FLAGS) or 'none'}):"
        f"\n  sessions: {len(browsers)}; with an acknowledged write before the kill:"
        f" {sessions_before_kill}"
        f"\n  acknowledged writes: {sum(b.acknowledged for b in browsers)}"
        f" ({acknowledged_before_kill} before the kill)"
        f"\n  read back after the restart, before any new write: {after_restart}"
        f"\n  failed requests: {len(run.failures)} ({len(outage)} during the outage),"
        f" statuses {dict(statuses)}, slowest {slowest:.2f} s"
        f"\n  /health/ 200 {recovered_after:.2f} s after the restart, gunicorn not restarted;"
        f" acknowledged writes after it: {sum(b.acknowledged_after_restart for b in browsers)}"
        f"\n  at the end: {at_the_end}; acknowledged data lost: {len(violations)}"
    )

    assert sessions_before_kill == len(browsers)
    assert after_restart.get("found") == after_restart["acknowledged"] == len(browsers)
    assert not after_restart.get("behind") and not after_restart.get("missing")
    assert not violations, violations[:10]
    assert at_the_end.get("found") == len(browsers) and not at_the_end.get("behind")
    assert outage, "no request was made during the outage"
    assert all(f.status is not None and 500 <= f.status < 600 for f in run.failures), statuses
    assert slowest < TIMEOUT + MARGIN, f"a failing request took {slowest:.2f} s"
    assert all(b.acknowledged_after_restart > 0 for b in browsers), "a session did not recover"
    assert len(re.findall(r"gunicorn pid (\d+)", log)) == 1, "gunicorn was restarted"
