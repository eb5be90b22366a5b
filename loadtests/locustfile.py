"""Locust scenario for the demo site: how real sites use their sessions.

Four kinds of users share the load (``weight``):

* ``AnonymousVisitor``: a new visitor, a new session each, mostly reads;
* ``Shopper``: cart writes on an existing session, with reads in between;
* ``ReturningVisitor``: reads on an existing session; it also checks what
  ``SESSION_SAVE_EVERY_REQUEST`` promises (a read refreshes the session) and,
  without it, that a read never writes (with ``--touch-after``, that a read
  moves the stored expiry only forward, past ``MONGO_SESSIONS_TOUCH_AFTER``);
* ``LoginChurn``: log in (the key is cycled), log out (the session is
  deleted), a wrong password now and then, and replays of the keys that
  should be dead.

Every response is checked with ``catch_response``: each user knows exactly
what it wrote before, so a lost or stale write shows up as a failure instead
of a silent slowdown. After a failure the user starts over with a new
session, so that one lost write counts once, not for every later request.

Run headless with the defaults of ``loadtests/locust.conf``::

    locust -f loadtests/locustfile.py --config loadtests/locust.conf --host http://127.0.0.1:8000

or let ``python -m loadtests run`` start the demo, run this and write a report.
The custom options (``--session-engine``, ``--save-every-request``, ``--touch-after``,
``--max-fail-ratio``, ``--max-p95-ms``, ``--think-time``; loadtests/thresholds.py)
can also be set in locust.conf or as ``LOADTEST_*`` environment variables. The
checks are in loadtests/checks.py, the plumbing the users share in
loadtests/session_user.py.
"""

from __future__ import annotations

import random
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from locust import task
from locust.clients import HttpSession

# Locust imports this file by path, with only loadtests/ on sys.path: make the
# checkout importable (the loadtests package puts example_project/ there too).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import loadtests
import loadtests.thresholds  # noqa: F401 - registers the options and the thresholds
from loadtests.checks import expect_cart, expect_text, expect_user
from loadtests.session_user import SESSION_COOKIE, SessionUser

DEMO_USER = ("demo", "demo-password")


class AnonymousVisitor(SessionUser):
    """A new visitor each time, mostly reading; the counter is its only write."""

    weight = 4

    def start_over(self) -> None:
        super().start_over()
        self.visits = 0

    @task(2)
    def arrive(self) -> None:
        """A new visitor: no cookie; the first counter visit creates the session."""
        self.start_over()
        self.count_visit_checked("/counter/ [new session]")

    @task(6)
    def read_cart(self) -> None:
        self.call(
            "GET",
            "/cart/",
            name="/cart/",
            check=expect_cart({}),
            expect_session_cookie=self.read_expectation() if self.visits else False,
        )

    @task(3)
    def read_home(self) -> None:
        """The home page (HTML), which reads the session to show who is signed in."""
        self.call(
            "GET",
            "/",
            name="/",
            check=expect_text("Not signed in"),
            expect_session_cookie=self.read_expectation() if self.visits else False,
            page=True,
        )

    @task(1)
    def count_again(self) -> None:
        self.count_visit_checked()


class Shopper(SessionUser):
    """Cart writes on an existing session, with reads and the counter in between."""

    weight = 3

    def start_over(self) -> None:
        super().start_over()
        self.cart: dict[str, int] = {}
        self.visits = 0
        self.wrote = False  # whether this shopper's session exists yet
        # The first GET sets the CSRF cookie; the first add creates the session.
        self.call("GET", "/cart/", name="/cart/", check=expect_cart({}))

    @task(5)
    def add_item(self) -> None:
        if self.add_item_checked():
            self.wrote = True

    @task(2)
    def remove_item(self) -> None:
        if not self.cart:
            self.add_item()
            return
        item = random.choice(list(self.cart))
        cart = dict(self.cart)
        cart[item] -= 1
        if cart[item] == 0:
            del cart[item]
        if self.post(
            "/cart/remove/", name="/cart/remove/", data={"item": item}, check=expect_cart(cart)
        ):
            self.cart = cart

    @task(4)
    def view_cart(self) -> None:
        self.view_cart_checked(self.read_expectation() if self.wrote else False)

    @task(1)
    def count_visit(self) -> None:
        # A write to another key of the same session: it must not lose the cart.
        if self.count_visit_checked():
            self.wrote = True

    @task(1)
    def leave(self) -> None:
        """Done shopping: the next task is a new shopper (the old session stays)."""
        self.start_over()


class ReturningVisitor(SessionUser):
    """Reads on an existing session, checking when the session is (not) written."""

    weight = 2

    def start_over(self) -> None:
        super().start_over()
        self.cart: dict[str, int] = {}
        self.visits = 0
        # The stored expiry last seen (mongo_sessions only, through /session/),
        # or None when a write since then may have moved it.
        self.expire_date: datetime | None = None
        if self.count_visit_checked("/counter/ [new session]") and self.post(
            "/cart/add/",
            name="/cart/add/",
            data={"item": "coffee"},
            check=expect_cart({"coffee": 1}),
        ):
            self.cart = {"coffee": 1}

    @task(6)
    def view_cart(self) -> None:
        self.view_cart_checked(self.read_expectation())

    @task(2)
    def inspect_session(self) -> None:
        """/session/ shows the stored expiry: it moves on reads only with save-every-request."""
        body = self.call(
            "GET",
            "/session/",
            name="/session/",
            check=self._check_expiry,
            expect_session_cookie=self.read_expectation(),
        )
        if body is not None and self.engine == "mongo_sessions":
            self.expire_date = datetime.fromisoformat(body["expire_date"])

    def _check_expiry(self, body: Any) -> str | None:
        if self.engine != "mongo_sessions":
            return None  # /session/ looks into MongoDB only
        if not isinstance(body, dict) or not body.get("expire_date"):
            return f"the session document is missing: {body}"
        new, old = datetime.fromisoformat(body["expire_date"]), self.expire_date
        if old is None:
            return None
        if self.touch_after:
            # MONGO_SESSIONS_TOUCH_AFTER: a read moves it only past the window, never back.
            return None if new >= old else f"expire_date went back ({old} -> {new})"
        if self.save_every_request and not new > old:
            return f"SESSION_SAVE_EVERY_REQUEST: expire_date did not move ({old} -> {new})"
        if not self.save_every_request and new != old:
            return f"a read rewrote the session: expire_date {old} -> {new}"
        return None

    @task(1)
    def count_visit(self) -> None:
        if self.count_visit_checked():
            self.expire_date = None  # written: the expiry moved


class LoginChurn(SessionUser):
    """Log in and out over and over: key cycling, deletion, and dead keys staying dead."""

    weight = 1

    def on_start(self) -> None:
        # A second client with its own cookie jar replays dead keys, so that the
        # server's answers to it never touch this user's cookies.
        self.probe = HttpSession(
            base_url=self.host, request_event=self.environment.events.request, user=self
        )
        super().on_start()

    def start_over(self) -> None:
        super().start_over()
        self.logged_in = False
        self.cart: dict[str, int] = {}
        self.call("GET", "/login/", name="/login/ [who am I]", check=expect_user(None))

    @task(3)
    def toggle_login(self) -> None:
        if self.logged_in:
            self.log_out()
        else:
            self.log_in()

    def log_in(self) -> None:
        old_key = self.session_key()
        body = self.post(
            "/login/",
            name="/login/ [log in]",
            data={
                "username": DEMO_USER[0],
                "password": DEMO_USER[1],
                "remember": random.choice(["on", ""]),
            },
            check=expect_user(DEMO_USER[0]),
        )
        if body is None:
            return
        self.logged_in = True  # login() keeps the data (the cart) under a new key
        new_key = self.session_key()
        if not self.server_side:
            return
        if old_key is not None and new_key == old_key:
            self._fail("/login/ [log in]", "login() did not cycle the session key")
            return
        if old_key is not None:
            # The pre-login key must be gone: nothing, not even the cart, under it.
            self.call(
                "GET",
                "/cart/",
                name="/cart/ [replay pre-login key]",
                check=expect_cart({}),
                client=self._fresh_probe(),
                cookies={SESSION_COOKIE: old_key},
            )

    def log_out(self) -> None:
        old_key = self.session_key()
        if self.post("/logout/", name="/logout/", data={}, check=expect_user(None)) is None:
            return
        self.logged_in = False
        self.cart = {}  # logout() flushes the session
        if old_key is not None and self.server_side:
            # The logged-out key must not log anyone in again (server-side revocation;
            # signed_cookies cannot do this, so it is not checked there).
            self.call(
                "GET",
                "/login/",
                name="/login/ [replay logged-out key]",
                check=expect_user(None),
                client=self._fresh_probe(),
                cookies={SESSION_COOKIE: old_key},
            )

    def _fresh_probe(self) -> HttpSession:
        self.probe.cookies.clear()
        return self.probe

    def _fail(self, name: str, message: str) -> None:
        """Record a failure that no single response shows (a comparison of two)."""
        self.environment.events.request.fire(
            request_type="CHECK",
            name=name,
            response_time=0,
            response_length=0,
            exception=AssertionError(message),
            context={},
        )
        self.recover()

    @task(1)
    def wrong_password(self) -> None:
        """A failed login changes nothing: same user, same cart."""
        self.post(
            "/login/",
            name="/login/ [wrong password]",
            data={"username": DEMO_USER[0], "password": "not-the-password"},
            status=401,
            check=expect_user(None),
        )

    @task(3)
    def who_am_i(self) -> None:
        self.call(
            "GET",
            "/login/",
            name="/login/ [who am I]",
            check=expect_user(DEMO_USER[0] if self.logged_in else None),
        )

    @task(2)
    def view_cart(self) -> None:
        self.view_cart_checked()

    @task(2)
    def add_item(self) -> None:
        self.add_item_checked()
