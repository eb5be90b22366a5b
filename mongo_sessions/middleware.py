"""A session middleware for sync and async stacks: ``mongo_sessions.middleware.SessionMiddleware``.

It replaces ``django.contrib.sessions.middleware.SessionMiddleware`` in
``MIDDLEWARE`` and behaves as it does (same cookies, ``Vary: Cookie``,
``SessionInterrupted``, no save on a 5xx answer), plus:

* **Async end to end.** Under ASGI Django's middleware loads lazily from
  whatever code touches the session first and saves from a worker thread,
  both through the sync ``MongoClient``. This one, on an async stack, loads
  the session with the event loop's ``AsyncMongoClient`` before the view when
  the request carries a session cookie, and saves it with ``asave()`` after:
  sync code in the view (``request.user``, a template) then finds the session
  loaded. Loading it up front costs one ``find`` for a request with a cookie
  that would not have read its session. Django 5.1+ (the async session API);
  with older Django it runs Django's behaviour.
* **The touch rule** (``MONGO_SESSIONS_TOUCH_AFTER``, see ``mongo_sessions.touch``):
  a request that read its session without modifying it saves it, so that the
  rule extends the expiry when the last extension is older than the setting;
  the cookie is sent again (with the new age) only when the expiry moved.
  With ``SESSION_SAVE_EVERY_REQUEST`` the cookie is sent on every request, as
  Django does, with the age the stored expiry really has.
* **Devices** (``MONGO_SESSIONS_RECORD_DEVICES``, see ``mongo_sessions.devices``):
  the request's user agent and client address are given to the session store.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import cast

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase, UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.cache import patch_vary_headers
from django.utils.http import http_date

from . import devices, touch

# SessionBase has its async API (aget, asave...) from Django 5.1 on.
ASYNC_SESSION_API = hasattr(SessionBase, "aget_expiry_age")


def _interrupted() -> SessionInterrupted:
    # Django's wording: the same condition, the same message.
    return SessionInterrupted(
        "The request's session was deleted before the request completed. The "
        "user may have logged out in a concurrent request, for example."
    )


def _delete_cookie(response: HttpResponse) -> None:
    response.delete_cookie(
        settings.SESSION_COOKIE_NAME,
        path=settings.SESSION_COOKIE_PATH,
        domain=settings.SESSION_COOKIE_DOMAIN,
        samesite=settings.SESSION_COOKIE_SAMESITE,
    )


def _set_cookie(response: HttpResponse, session: SessionBase, max_age: int | None) -> None:
    response.set_cookie(
        settings.SESSION_COOKIE_NAME,
        session.session_key or "",
        max_age=max_age,
        expires=None if max_age is None else http_date(time.time() + max_age),
        domain=settings.SESSION_COOKIE_DOMAIN,
        path=settings.SESSION_COOKIE_PATH,
        secure=bool(settings.SESSION_COOKIE_SECURE),
        httponly=bool(settings.SESSION_COOKIE_HTTPONLY),
        samesite=settings.SESSION_COOKIE_SAMESITE,
    )


def _what_to_do(request: HttpRequest, response: HttpResponse) -> str | None:
    """Return "delete", "save", "touch" or None (nothing), as Django's middleware decides."""
    session = request.session
    if settings.SESSION_COOKIE_NAME in request.COOKIES and session.is_empty():
        return "delete"
    if session.is_empty() or response.status_code >= 500:
        return None
    if session.modified or settings.SESSION_SAVE_EVERY_REQUEST:
        return "save"
    if touch.wants_touch(session):
        return "touch"
    return None


def _cookie_age(session: SessionBase, at_browser_close: bool, expiry_age: int) -> int | None:
    if at_browser_close:
        return None
    # Within the touch window the stored expiry did not move: the cookie says so.
    stored = touch.stored_age(session)
    return expiry_age if stored is None else stored


class SessionMiddleware(DjangoSessionMiddleware):
    """Django's session middleware with async load/save, the touch rule and devices."""

    sync_capable = True
    async_capable = True

    def process_request(self, request: HttpRequest) -> None:
        # No I/O: the store loads on first use (or in __acall__ on an async stack).
        super().process_request(request)
        devices.attach(request.session, request)

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        """Save the session and set or delete its cookie (Django's rules, plus the touch)."""
        session = getattr(request, "session", None)
        if not isinstance(session, SessionBase):
            return response
        # If the session was accessed, it must be varied on, whatever is saved.
        vary = session.accessed
        action = _what_to_do(request, response)
        if action == "delete":
            _delete_cookie(response)
            vary = True
        elif action is not None:
            # Read before the save, as Django does.
            at_browser_close = session.get_expire_at_browser_close()
            expiry_age = session.get_expiry_age()
            try:
                if action == "touch":
                    touch.touch_read_only(session)
                else:
                    session.save()
            except UpdateError as e:
                raise _interrupted() from e
            if action == "save" or touch.outcome(session) == touch.EXTENDED:
                _set_cookie(response, session, _cookie_age(session, at_browser_close, expiry_age))
                vary = True
        if vary:
            patch_vary_headers(response, ("Cookie",))
        return response

    async def aprocess_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        """Do what process_response() does with the async session API only."""
        session = getattr(request, "session", None)
        if not isinstance(session, SessionBase):
            return response
        vary = session.accessed
        action = _what_to_do(request, response)
        if action == "delete":
            _delete_cookie(response)
            vary = True
        elif action is not None:
            at_browser_close = await session.aget_expire_at_browser_close()
            expiry_age = await session.aget_expiry_age()
            try:
                if action == "touch":
                    await touch.atouch_read_only(session)
                else:
                    await session.asave()
            except UpdateError as e:
                raise _interrupted() from e
            if action == "save" or touch.outcome(session) == touch.EXTENDED:
                _set_cookie(response, session, _cookie_age(session, at_browser_close, expiry_age))
                vary = True
        if vary:
            patch_vary_headers(response, ("Cookie",))
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        if not ASYNC_SESSION_API:
            return await super().__acall__(request)
        self.process_request(request)
        session: SessionBase = request.session
        if session.session_key is not None:
            # Load now, with the async client, so that sync code in the view finds
            # it loaded; "accessed" stays the view's business (Vary: Cookie).
            await session._aget_session()  # type: ignore[attr-defined]
            session.accessed = False
        get_response = cast(Callable[[HttpRequest], Awaitable[HttpResponse]], self.get_response)
        response = await get_response(request)
        return await self.aprocess_response(request, response)
