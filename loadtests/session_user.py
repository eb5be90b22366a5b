"""The plumbing the Locust users share: checked requests, CSRF, cookies, starting over."""

from __future__ import annotations

import random
from typing import Any

from locust import HttpUser
from locust.clients import HttpSession

from demo.catalogue import CATALOGUE
from demo.harness import DEMO_API

from .checks import Check, expect_cart, expect_visits, snippet
from .matrix import SERVER_SIDE

SESSION_COOKIE = "sessionid"
CSRF_COOKIE = "csrftoken"
JSON_HEADERS = {"Accept": "application/json"}
HTML_HEADERS = {"Accept": "text/html"}


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
        """MONGO_SESSIONS_TOUCH_AFTER of the demo (s), 0 when off (``--touch-after``)."""
        options = self.environment.parsed_options
        return float(options.touch_after) if options else 0.0

    _recovering = False
    visits = 0  # the counter value this user last saw; subclasses reset it in start_over
    cart: dict[str, int]  # the cart this user last saw; subclasses reset it in start_over

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
        page: bool = False,
    ) -> Any:
        """Make one request and validate it; return the JSON body, or None after a failure.

        ``path`` is one of the demo's JSON answers (under DEMO_API), or with
        ``page`` an HTML page, whose text ``check`` is given instead.
        ``expect_session_cookie``: True when the response must set the session
        cookie (a save), False when it must not (a read that does not write).
        A failure makes the user start over, so it does not cascade.
        """
        http = client or self.client
        headers = dict(HTML_HEADERS if page else JSON_HEADERS)
        path = path if page else DEMO_API + path
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
            problem, body = validate(response, status, page, check, expect_session_cookie)
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

    def add_item_checked(self) -> bool:
        """Add an item of the catalogue; the answer must show this user's cart plus it."""
        item = random.choice(list(CATALOGUE))
        cart = {**self.cart, item: self.cart.get(item, 0) + 1}
        if self.post("/cart/add/", name="/cart/add/", data={"item": item}, check=expect_cart(cart)):
            self.cart = cart
            return True
        return False

    def view_cart_checked(self, expect_session_cookie: bool | None = None) -> None:
        """Read the cart, which must hold exactly what this user put in it."""
        self.call(
            "GET",
            "/cart/",
            name="/cart/",
            check=expect_cart(self.cart),
            expect_session_cookie=expect_session_cookie,
        )

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


def validate(
    response: Any,
    status: int,
    page: bool,
    check: Check | None,
    expect_session_cookie: bool | None,
) -> tuple[str | None, Any]:
    """What is wrong with ``response`` (None if nothing), and its body (JSON, or a page's text)."""
    if response.status_code != status:
        return f"HTTP {response.status_code} (expected {status}): {snippet(response)}", None
    try:
        body = response.text if page else response.json()
    except ValueError:
        return f"not JSON: {snippet(response)}", None
    problem = check(body) if check is not None else None
    if problem is None and expect_session_cookie is not None:
        sets_cookie = SESSION_COOKIE in response.cookies
        if sets_cookie != expect_session_cookie:
            problem = (
                "the response saved the session (Set-Cookie) although it only read it"
                if sets_cookie
                else "SESSION_SAVE_EVERY_REQUEST: a read did not save the session"
            )
    return problem, body
