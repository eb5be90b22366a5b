"""The demo's JSON API under ``/api/``, and ``/health/``: the same features as the pages.

The load tests (``loadtests/locustfile.py``), the container check and scripts
use these; browsers use the HTML pages of ``demo/views.py``. Every answer of
these views is JSON. POSTs take form fields or a JSON object, and need the CSRF
token like any Django POST: send the ``csrftoken`` cookie's value (any GET here
sets it) as ``X-CSRFToken``. A request refused before it reaches a view (a
CSRF failure, an unknown path) gets Django's own answer, which is not JSON.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any

from django.contrib.auth import logout
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

import mongo_sessions
from demo.accounts import devices, sign_in, truthy
from demo.decorators import session_view
from demo.state import CATALOGUE, UnknownItem, cart_of, cart_total, change_cart, count_visit
from mongo_sessions.exceptions import SessionStoreError

logger = logging.getLogger(__name__)

View = Callable[[HttpRequest], JsonResponse]


def _form(request: HttpRequest) -> dict[str, Any]:
    """POST fields, from a form or from a JSON object body."""
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}
    return request.POST.dict()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _error(status: int, error: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": error, **extra}, status=status)


def _cart(cart: dict[str, int]) -> JsonResponse:
    return JsonResponse({"cart": cart, "total": f"{cart_total(cart):.2f}"})


def _who(request: HttpRequest) -> JsonResponse:
    user = request.user.get_username() if request.user.is_authenticated else None
    return JsonResponse({"user": user})


def _login_required(view: View) -> View:
    """Answer 401 in JSON, rather than redirect to the login page, when nobody is signed in."""

    @wraps(view)
    def wrapper(request: HttpRequest) -> JsonResponse:
        if not request.user.is_authenticated:
            return _error(401, "login required")
        return view(request)

    return wrapper


@require_GET
@ensure_csrf_cookie
def whoami(request: HttpRequest) -> JsonResponse:
    """``{"user": name or null}``."""
    return _who(request)


@session_view("GET", "POST")
def counter(request: HttpRequest) -> JsonResponse:
    """``{"visits": n}``: one session write on every visit."""
    return JsonResponse({"visits": count_visit(request.session)})


@session_view("GET")
def cart(request: HttpRequest) -> JsonResponse:
    """``{"cart": {item: count}, "total": "0.00"}``."""
    return _cart(cart_of(request.session))


def _cart_change(delta: int) -> View:
    """The view that adds ``delta`` of ``item``: the cart as ``cart()`` shows it, or 400."""

    @require_POST
    @never_cache
    def view(request: HttpRequest) -> JsonResponse:
        item = str(_form(request).get("item", "")).strip().lower()
        try:
            return _cart(change_cart(request.session, item, delta))
        except UnknownItem:
            return _error(400, "unknown item", item=item, catalogue=sorted(CATALOGUE))

    return view


cart_add = _cart_change(+1)
cart_remove = _cart_change(-1)


@session_view("GET", "POST")
def login_view(request: HttpRequest) -> JsonResponse:
    """GET: who is signed in. POST ``username``, ``password``, ``remember``: log in, or 401."""
    if request.method == "POST":
        form = _form(request)
        user = sign_in(
            request,
            str(form.get("username", "")),
            str(form.get("password", "")),
            remember=truthy(form.get("remember", "")),
        )
        if user is None:
            return JsonResponse({"error": "invalid credentials", "user": None}, status=401)
    return _who(request)


@session_view("GET", "POST")
def logout_view(request: HttpRequest) -> JsonResponse:
    """GET: who is signed in. POST: log out (the session's document is deleted)."""
    if request.method == "POST":
        logout(request)
    return _who(request)


@session_view("GET")
@_login_required
def sessions_list(request: HttpRequest) -> JsonResponse:
    """``{"sessions": [{key_hash, created_at, expire_date, current}, ...]}``, newest first."""
    rows = [
        {**row, "created_at": _iso(row["created_at"]), "expire_date": _iso(row["expire_date"])}
        for row in devices(request)
    ]
    return JsonResponse({"sessions": rows})


@require_POST
@never_cache
@_login_required
def revoke_others(request: HttpRequest) -> JsonResponse:
    """Delete every session of the user but this one: ``{"revoked": n}``."""
    revoked = mongo_sessions.revoke_user_sessions(request.user, keep=request.session)
    return JsonResponse({"revoked": revoked})


@session_view("GET")
def session_detail(request: HttpRequest) -> JsonResponse:
    """The current session as stored: key hash, BSON size, expiry, connection style and server."""
    request.session.items()  # loads the session: a stale key is forgotten, not looked up
    stored = mongo_sessions.stored_session(request.session)
    info = mongo_sessions.describe_connection()
    return JsonResponse(
        {
            "session_key_hash": stored.key_hash if stored else None,
            "size": stored.size if stored else 0,
            "expire_date": _iso(stored.expire_date) if stored else None,
            "style": info.get("style"),
            "address": info.get("address"),
        }
    )


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """200 ``{"status": "ok"}`` when MongoDB answers a ping within the timeout, else 503."""
    try:
        mongo_sessions.ping()
    except SessionStoreError as exc:
        logger.warning("health check failed: %s", exc)
        return JsonResponse({"status": "unavailable"}, status=503)
    return JsonResponse({"status": "ok"})


app_name = "api"
urlpatterns = [
    path("", whoami, name="whoami"),
    path("counter/", counter, name="counter"),
    path("cart/", cart, name="cart"),
    path("cart/add/", cart_add, name="cart-add"),
    path("cart/remove/", cart_remove, name="cart-remove"),
    path("login/", login_view, name="login"),
    path("logout/", logout_view, name="logout"),
    path("sessions/", sessions_list, name="sessions"),
    path("sessions/revoke-others/", revoke_others, name="revoke-others"),
    path("session/", session_detail, name="session"),
]
