"""Locust scenario for the demo site: how real sites use their sessions.

Four kinds of users share the load (``weight``):

* ``AnonymousVisitor``: a new visitor, a new session each, mostly reads;
* ``Shopper``: cart writes on an existing session, with reads in between;
* ``ReturningVisitor``: reads on an existing session; it also checks what
  ``SESSION_SAVE_EVERY_REQUEST`` promises (a read refreshes the session) and,
  without it, that a read never writes;
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
The custom options below (``--session-engine``, ``--save-every-request``,
``--max-fail-ratio``, ``--max-p95-ms``, ``--think-time``) can also be set in
locust.conf or as ``LOADTEST_*`` environment variables.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from locust import HttpUser, events, task
from locust.clients import HttpSession
from locust.env import Environment

logger = logging.getLogger("loadtests")

#: The demo's catalogue (example_project/demo/views.py), to compute expected totals.
CATALOGUE: dict[str, Decimal] = {
    "apple": Decimal("0.50"),
    "bread": Decimal("2.25"),
    "coffee": Decimal("7.00"),
}
ENGINES = ("mongo_sessions", "cache", "db", "signed_cookies")
#: Engines that keep sessions on the server, so a deleted or cycled key is dead.
#: With signed_cookies the whole session is in the cookie: an old cookie stays
#: valid until it expires, which is that engine's documented limitation.
SERVER_SIDE = frozenset({"mongo_sessions", "cache", "db"})

SESSION_COOKIE = "sessionid"
CSRF_COOKIE = "csrftoken"
JSON_HEADERS = {"Accept": "application/json"}
DEMO_USER = ("demo", "demo-password")

Check = Callable[[Any], str | None]


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    group = parser.add_argument_group("django-mongo-sessions load test")
    group.add_argument(
        "--session-engine",
        choices=ENGINES,
        default="mongo_sessions",
        env_var="LOADTEST_SESSION_ENGINE",
        help="session engine the demo runs (DEMO_SESSION_ENGINE): decides what can be checked",
    )
    group.add_argument(
        "--save-every-request",
        action="store_true",
        default=False,
        env_var="LOADTEST_SAVE_EVERY_REQUEST",
        help="the demo runs with SESSION_SAVE_EVERY_REQUEST = True: check that reads refresh",
    )
    group.add_argument(
        "--touch-after",
        type=float,
        default=0.0,
        env_var="LOADTEST_TOUCH_AFTER",
        help="the demo runs with MONGO_SESSIONS_TOUCH_AFTER = this (s): reads extend the "
        "stored expiry only past it (0: off)",
    )
    group.add_argument(
        "--max-fail-ratio",
        type=float,
        default=0.0,
        env_var="LOADTEST_MAX_FAIL_RATIO",
        help="exit with 1 when more than this ratio of requests failed (default 0: any failure)",
    )
    group.add_argument(
        "--max-p95-ms",
        type=float,
        default=2000.0,
        env_var="LOADTEST_MAX_P95_MS",
        help="exit with 1 when the 95th percentile response time exceeds this (ms)",
    )
    group.add_argument(
        "--think-time",
        type=float,
        default=0.0,
        env_var="LOADTEST_THINK_TIME",
        help="each user waits a random 0..this many seconds between tasks (default 0)",
    )


@events.quitting.add_listener
def _apply_thresholds(environment: Environment, **kwargs: Any) -> None:
    """Set the exit code from the thresholds: failures, p95, and errors in this file."""
    options = environment.parsed_options
    if options is None:  # run as a library, no command line
        return
    total = environment.stats.total
    problems: list[str] = []
    if total.num_requests == 0:
        problems.append("no request was made")
    if total.fail_ratio > options.max_fail_ratio:
        problems.append(
            f"failure ratio {total.fail_ratio:.4f} > {options.max_fail_ratio:g} "
            f"({total.num_failures} of {total.num_requests} requests)"
        )
    p95 = total.get_response_time_percentile(0.95) or 0
    if p95 > options.max_p95_ms:
        problems.append(f"p95 {p95:.0f} ms > {options.max_p95_ms:g} ms")
    runner = environment.runner
    if runner is not None and runner.exceptions:
        problems.append(f"{len(runner.exceptions)} exception(s) raised in the locustfile")
    _write_verdict(environment, total, p95, problems)
    if problems:
        logger.error("Thresholds not met: %s", "; ".join(problems))
        environment.process_exit_code = 1
    else:
        logger.info(
            "Thresholds met: failure ratio %.4f <= %g, p95 %.0f ms <= %g ms",
            total.fail_ratio,
            options.max_fail_ratio,
            p95,
            options.max_p95_ms,
        )
        environment.process_exit_code = 0


def _write_verdict(environment: Environment, total: Any, p95: float, problems: list[str]) -> None:
    """Next to the CSV files: the thresholds applied and the options in effect."""
    options = environment.parsed_options
    prefix = getattr(options, "csv_prefix", None)
    if options is None or not prefix:
        return
    verdict = {
        "passed": not problems,
        "problems": problems,
        "requests": total.num_requests,
        "failures": total.num_failures,
        "fail_ratio": total.fail_ratio,
        "p95_ms": p95,
        "max_fail_ratio": options.max_fail_ratio,
        "max_p95_ms": options.max_p95_ms,
        "users": options.num_users,
        "spawn_rate": options.spawn_rate,
        "run_time": options.run_time,
        "think_time": options.think_time,
        "session_engine": options.session_engine,
        "save_every_request": options.save_every_request,
        "host": environment.host,
    }
    Path(f"{prefix}_verdict.json").write_text(json.dumps(verdict, indent=2))


# --- checks ----------------------------------------------------------------


def cart_payload(cart: dict[str, int]) -> dict[str, Any]:
    """The JSON the demo answers for ``cart``."""
    total = sum((CATALOGUE[item] * n for item, n in cart.items()), Decimal("0.00"))
    return {"cart": dict(cart), "total": f"{total:.2f}"}


def expect_equal(expected: Any) -> Check:
    def check(body: Any) -> str | None:
        if body != expected:
            return f"expected {expected}, got {body}"
        return None

    return check


def expect_cart(cart: dict[str, int]) -> Check:
    """The cart must show exactly what this user put in it (a lost write fails)."""
    expected = cart_payload(cart)

    def check(body: Any) -> str | None:
        if not isinstance(body, dict) or body.get("cart") != expected["cart"]:
            got = body.get("cart") if isinstance(body, dict) else body
            return f"stale or lost cart: expected {expected['cart']}, got {got}"
        if body.get("total") != expected["total"]:
            return f"wrong total: expected {expected['total']}, got {body.get('total')}"
        return None

    return check


def expect_visits(visits: int) -> Check:
    def check(body: Any) -> str | None:
        got = body.get("visits") if isinstance(body, dict) else body
        if got != visits:
            return f"stale or lost counter: expected visits={visits}, got {got}"
        return None

    return check


def expect_user(user: str | None) -> Check:
    def check(body: Any) -> str | None:
        got = body.get("user", "<missing>") if isinstance(body, dict) else body
        if got != user:
            return f"expected user {user!r}, got {got!r}"
        return None

    return check


def _snippet(response: Any) -> str:
    try:
        return repr((response.text or "")[:200])
    except Exception:  # a connection error has no body to decode
        return repr(getattr(response, "error", None))


# --- users -----------------------------------------------------------------


class SessionUser(HttpUser):
    """Shared plumbing: JSON calls checked with catch_response, CSRF, cookies."""

    abstract = True

    def wait_time(self) -> float:
        options = self.environment.parsed_options
        think = options.think_time if options is not None else 0.0
        return random.uniform(0.0, think) if think > 0 else 0.0

    @property
    def engine(self) -> str:
        options = self.environment.parsed_options
        return options.session_engine if options is not None else "mongo_sessions"

    @property
    def server_side(self) -> bool:
        return self.engine in SERVER_SIDE

    @property
    def save_every_request(self) -> bool:
        options = self.environment.parsed_options
        return bool(options and options.save_every_request)

    @property
    def touch_after(self) -> float:
        options = self.environment.parsed_options
        return float(options.touch_after) if options else 0.0

    _recovering = False
    visits = 0  # the counter value this user last saw; subclasses reset it in start_over

    def on_start(self) -> None:
        self.start_over()

    def start_over(self) -> None:
        """Forget everything: a new visitor with no cookie. Subclasses reset their state."""
        self.client.cookies.clear()

    def recover(self) -> None:
        """Start over after a failure, once (a failure while starting over does not loop)."""
        if self._recovering:
            return
        self._recovering = True
        try:
            self.start_over()
        finally:
            self._recovering = False

    def session_key(self) -> str | None:
        return self.client.cookies.get(SESSION_COOKIE)

    def call(
        self,
        method: str,
        path: str,
        *,
        name: str,
        check: Check | None = None,
        status: int = 200,
        data: dict[str, str] | None = None,
        client: HttpSession | None = None,
        cookies: dict[str, str] | None = None,
        expect_session_cookie: bool | None = None,
    ) -> Any:
        """Make one request and validate it; return the JSON body, or None after a failure.

        ``expect_session_cookie``: True when the response must set the session
        cookie (a save), False when it must not (a read that does not write).
        A failure makes the user start over, so it does not cascade.
        """
        http = client or self.client
        headers = dict(JSON_HEADERS)
        if method == "POST":
            token = http.cookies.get(CSRF_COOKIE)
            if token:
                headers["X-CSRFToken"] = token
        with http.request(
            method,
            path,
            name=name,
            headers=headers,
            data=data,
            cookies=cookies,
            catch_response=True,
        ) as response:
            problem = None
            body: Any = None
            if response.status_code != status:
                problem = f"HTTP {response.status_code} (expected {status}): {_snippet(response)}"
            else:
                try:
                    body = response.json()
                except ValueError:
                    problem = f"not JSON: {_snippet(response)}"
            if problem is None and check is not None:
                problem = check(body)
            if problem is None and expect_session_cookie is not None:
                sets_cookie = SESSION_COOKIE in response.cookies
                if sets_cookie != expect_session_cookie:
                    problem = (
                        "the response saved the session (Set-Cookie) although it only read it"
                        if sets_cookie
                        else "SESSION_SAVE_EVERY_REQUEST: a read did not save the session"
                    )
            if problem is not None:
                response.failure(problem)
            else:
                response.success()
        if problem is not None:
            self.recover()
            return None
        return body

    def post(self, path: str, *, name: str, data: dict[str, str], **kwargs: Any) -> Any:
        return self.call("POST", path, name=name, data=data, **kwargs)

    def count_visit_checked(self, name: str = "/counter/") -> bool:
        """Visit the counter, which must show one more than this user saw; keep it if so."""
        visits = self.visits + 1
        if self.call("GET", "/counter/", name=name, check=expect_visits(visits)):
            self.visits = visits
            return True
        return False

    def read_expectation(self) -> bool | None:
        """What a read on an existing session must do with the cookie.

        With SESSION_SAVE_EVERY_REQUEST every response saves and sets the cookie;
        without it a read must not write at all.
        """
        return self.save_every_request


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
        self.call(
            "GET",
            "/",
            name="/",
            check=expect_user(None),
            expect_session_cookie=self.read_expectation() if self.visits else False,
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
        item = random.choice(list(CATALOGUE))
        cart = {**self.cart, item: self.cart.get(item, 0) + 1}
        if self.post("/cart/add/", name="/cart/add/", data={"item": item}, check=expect_cart(cart)):
            self.cart = cart
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
        self.call(
            "GET",
            "/cart/",
            name="/cart/",
            check=expect_cart(self.cart),
            expect_session_cookie=self.read_expectation() if self.wrote else False,
        )

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
        self.call(
            "GET",
            "/cart/",
            name="/cart/",
            check=expect_cart(self.cart),
            expect_session_cookie=self.read_expectation(),
        )

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
        self.call("GET", "/cart/", name="/cart/", check=expect_cart(self.cart))

    @task(2)
    def add_item(self) -> None:
        item = random.choice(list(CATALOGUE))
        cart = {**self.cart, item: self.cart.get(item, 0) + 1}
        if self.post("/cart/add/", name="/cart/add/", data={"item": item}, check=expect_cart(cart)):
            self.cart = cart
