"""What every view of the demo that uses the session is wrapped in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_http_methods

V = TypeVar("V", bound=Callable[..., Any])


def session_view(*methods: str) -> Callable[[V], V]:
    """Allow only ``methods``, never let a cache keep the answer, and set the CSRF cookie.

    The answer depends on the visitor's session, so no shared cache may keep it;
    the CSRF cookie lets the page (or an API client) send the POSTs that follow.
    """

    def decorate(view: V) -> V:
        wrapped = require_http_methods(list(methods))(ensure_csrf_cookie(never_cache(view)))
        return wrapped  # type: ignore[no-any-return]

    return decorate
