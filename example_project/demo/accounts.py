"""Signing in, as the demo's pages and its API do it, and the list of a user's sessions
("devices") that the API answers (the pages use the package's, ``mongo_sessions.urls``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import authenticate, login
from django.http import HttpRequest

import mongo_sessions

#: "Remember me" keeps the login this long; otherwise it ends with the browser.
REMEMBER_ME_AGE = timedelta(days=30)


def truthy(value: Any) -> bool:
    """Read a checkbox or flag sent as a form field or a JSON value."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "on", "true", "yes"}


def sign_in(request: HttpRequest, username: str, password: str, remember: bool) -> Any | None:
    """Log the user in and return them, or return None for wrong credentials.

    ``login()`` gives the session a new key (the old document is deleted), which
    defeats session fixation; the data (the cart) carries over.
    """
    user = authenticate(request, username=username, password=password)
    if user is None:
        return None
    login(request, user)
    if remember:
        request.session.set_expiry(REMEMBER_ME_AGE)
    else:
        request.session.set_expiry(0)  # ends when the browser closes
    return user


def devices(request: HttpRequest) -> list[dict[str, Any]]:
    """List the signed-in user's live sessions, newest first, the current one marked."""
    current = mongo_sessions.hash_session_key(request.session.session_key or "")
    return [
        {
            "key_hash": s.key_hash,
            "created_at": s.created_at,
            "expire_date": s.expire_date,
            "current": s.key_hash == current,
        }
        for s in mongo_sessions.user_sessions(request.user)
    ]
