"""The tests' one HTTP client for the demo site: a browser without JavaScript, on requests.

It keeps a cookie jar, sends the CSRF token of the ``csrftoken`` cookie as
``X-CSRFToken`` on POST (as the demo's pages do), asks for JSON unless told
otherwise, and never follows a redirect, so that a test sees every answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.cookies import RequestsCookieJar
from requests.structures import CaseInsensitiveDict


@dataclass
class Response:
    """One answer: status, headers, body, and each Set-Cookie header as sent."""

    status: int
    headers: CaseInsensitiveDict[str]
    body: bytes
    set_cookies: list[str]

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()

    def set_cookie(self, name: str) -> SimpleCookie | None:
        """The Set-Cookie header of this response for ``name`` (with its attributes), if any."""
        for header in self.set_cookies:
            cookie: SimpleCookie = SimpleCookie()
            cookie.load(header)
            if name in cookie:
                return cookie
        return None

    def cookie(self, name: str) -> str | None:
        """The value this response's Set-Cookie gives ``name``, if it sets it."""
        cookie = self.set_cookie(name)
        return cookie[name].value if cookie is not None else None


class Client:
    """A cookie jar on ``base`` (e.g. "http://127.0.0.1:8000"), optionally pre-filled."""

    def __init__(self, base: str, cookies: dict[str, str] | None = None, timeout: float = 30.0):
        self.base = base.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()
        host = urlsplit(self.base).hostname or ""
        for name, value in (cookies or {}).items():
            self.http.cookies.set(name, value, domain=host, path="/")

    @property
    def cookies(self) -> RequestsCookieJar:
        return self.http.cookies

    @property
    def session_key(self) -> str | None:
        return self.cookies.get("sessionid")

    def request(
        self,
        method: str,
        path: str,
        data: dict[str, str] | None = None,
        accept: str = "application/json",
        csrf: bool = True,
        cookie_header: bytes | None = None,
    ) -> Response:
        """Send one request; ``cookie_header`` replaces the jar's Cookie header verbatim.

        Raises requests.RequestException (an OSError) when no answer comes within
        the client's timeout.
        """
        headers: dict[str, str | bytes] = {"Accept": accept}
        if cookie_header is not None:
            headers["Cookie"] = cookie_header
        token = self.cookies.get("csrftoken")
        if method == "POST" and csrf and token:
            headers["X-CSRFToken"] = token
        raw = self.http.request(
            method,
            self.base + path,
            data=data if method == "POST" else None,
            headers=headers,
            allow_redirects=False,
            timeout=self.timeout,
        )
        return Response(
            status=raw.status_code,
            headers=raw.headers,
            body=raw.content,
            set_cookies=raw.raw.headers.getlist("Set-Cookie"),
        )

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, data: dict[str, str] | None = None, **kwargs: Any) -> Response:
        """POST a form, after a GET of the home page when there is no CSRF cookie yet."""
        if "csrftoken" not in self.cookies:
            self.get("/")
        return self.request("POST", path, data or {}, **kwargs)
