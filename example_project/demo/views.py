"""Pages of the demo site: each one uses the session the way real sites do.

Every page answers in HTML for browsers and in JSON when the request says
``Accept: application/json`` (the load tests and container checks use that).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import bson
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate, login, logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from pymongo.errors import PyMongoError

import mongo_sessions
from mongo_sessions import connection
from mongo_sessions.exceptions import SessionStoreError

logger = logging.getLogger(__name__)

#: What the shop sells, with unit prices.
CATALOGUE: dict[str, Decimal] = {
    "apple": Decimal("0.50"),
    "bread": Decimal("2.25"),
    "coffee": Decimal("7.00"),
}

#: Session values not to show on /session/ (a hash derived from the password hash).
HIDDEN_KEYS = frozenset({"_auth_user_hash"})
HIDDEN = "(hidden)"

#: "Remember me" keeps the login this long; otherwise it ends with the browser.
REMEMBER_ME_AGE = timedelta(days=30)


# --- helpers ---------------------------------------------------------------


def wants_json(request: HttpRequest) -> bool:
    """True when the client asked for JSON rather than a page."""
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def _form(request: HttpRequest) -> dict[str, Any]:
    """POST fields, from a form or from a JSON body."""
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}
    return request.POST.dict()


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "on", "true", "yes"}


def _aware(value: datetime | None) -> datetime | None:
    """Stored datetimes may come back naive (pymongo's default): they are UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def _iso(value: datetime | None) -> str | None:
    value = _aware(value)
    return value.isoformat() if value is not None else None


def _get_cart(request: HttpRequest) -> dict[str, int]:
    cart = request.session.get("cart", {})
    return {item: int(n) for item, n in cart.items() if item in CATALOGUE and int(n) > 0}


def _cart_total(cart: dict[str, int]) -> Decimal:
    return sum((CATALOGUE[item] * n for item, n in cart.items()), Decimal("0.00"))


def _cart_payload(cart: dict[str, int]) -> dict[str, Any]:
    return {"cart": cart, "total": f"{_cart_total(cart):.2f}"}


def _json_error(status: int, error: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": error, **extra}, status=status)


# --- pages -----------------------------------------------------------------


@require_GET
@ensure_csrf_cookie
def home(request: HttpRequest) -> HttpResponse:
    if wants_json(request):
        user = request.user.get_username() if request.user.is_authenticated else None
        return JsonResponse({"user": user})
    return render(request, "demo/home.html", {"catalogue": CATALOGUE})


@require_http_methods(["GET", "POST"])
@ensure_csrf_cookie
@never_cache
def counter(request: HttpRequest) -> HttpResponse:
    """A visit counter: one session write on every visit."""
    visits = int(request.session.get("visits", 0)) + 1
    request.session["visits"] = visits
    if wants_json(request):
        return JsonResponse({"visits": visits})
    return render(request, "demo/counter.html", {"visits": visits})


@require_GET
@ensure_csrf_cookie
@never_cache
def cart(request: HttpRequest) -> HttpResponse:
    items = _get_cart(request)
    if wants_json(request):
        return JsonResponse(_cart_payload(items))
    lines = [
        {
            "item": item,
            "price": price,
            "count": items.get(item, 0),
            "subtotal": price * items.get(item, 0),
        }
        for item, price in CATALOGUE.items()
    ]
    return render(
        request,
        "demo/cart.html",
        {"lines": lines, "total": _cart_total(items), "count": sum(items.values())},
    )


def _change_cart(request: HttpRequest, delta: int) -> HttpResponse:
    item = str(_form(request).get("item", "")).strip().lower()
    if item not in CATALOGUE:
        if wants_json(request):
            return _json_error(400, "unknown item", item=item, catalogue=sorted(CATALOGUE))
        return HttpResponse(f"Unknown item {item!r}.", status=400, content_type="text/plain")
    items = _get_cart(request)
    count = items.get(item, 0) + delta
    if count > 0:
        items[item] = count
    else:
        items.pop(item, None)
    # Assign a new dict: the session notices assignments, not in-place changes.
    request.session["cart"] = items
    if wants_json(request):
        return JsonResponse(_cart_payload(items))
    return redirect("cart")


@require_POST
@never_cache
def cart_add(request: HttpRequest) -> HttpResponse:
    return _change_cart(request, +1)


@require_POST
@never_cache
def cart_remove(request: HttpRequest) -> HttpResponse:
    return _change_cart(request, -1)


@require_http_methods(["GET", "POST"])
@ensure_csrf_cookie
@never_cache
def login_view(request: HttpRequest) -> HttpResponse:
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = ""
    error = ""
    if request.method == "POST":
        form = _form(request)
        user = authenticate(
            request,
            username=str(form.get("username", "")),
            password=str(form.get("password", "")),
        )
        if user is not None:
            # login() gives the session a new key (the old document is deleted),
            # which defeats session fixation; the data (the cart) carries over.
            login(request, user)
            if _truthy(form.get("remember", "")):
                request.session.set_expiry(REMEMBER_ME_AGE)
            else:
                request.session.set_expiry(0)  # ends when the browser closes
            if wants_json(request):
                return JsonResponse({"user": user.get_username()})
            return redirect(next_url or settings.LOGIN_REDIRECT_URL)
        if wants_json(request):
            return JsonResponse({"error": "invalid credentials", "user": None}, status=401)
        error = "Wrong username or password."
    elif wants_json(request):
        user_name = request.user.get_username() if request.user.is_authenticated else None
        return JsonResponse({"user": user_name})
    return render(
        request,
        "demo/login.html",
        {"error": error, "next": next_url, "demo_username": settings.DEMO_USERNAME},
        status=401 if error else 200,
    )


@require_http_methods(["GET", "POST"])
@ensure_csrf_cookie
@never_cache
def logout_view(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        # logout() flushes the session: its document is deleted from MongoDB.
        logout(request)
        if wants_json(request):
            return JsonResponse({"user": None})
        return redirect("login")
    if wants_json(request):
        user_name = request.user.get_username() if request.user.is_authenticated else None
        return JsonResponse({"user": user_name})
    return render(request, "demo/logout.html")


def _login_required(request: HttpRequest) -> HttpResponseBase | None:
    if request.user.is_authenticated:
        return None
    if wants_json(request):
        return _json_error(401, "login required")
    return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)


@require_GET
@ensure_csrf_cookie
@never_cache
def sessions_list(request: HttpRequest) -> HttpResponseBase:
    """The signed-in user's sessions as JSON; browsers get the package's page."""
    if not wants_json(request):
        return redirect("mongo_sessions:list")
    if (denied := _login_required(request)) is not None:
        return denied
    current = mongo_sessions.hash_session_key(request.session.session_key or "")
    rows = [
        {
            "key_hash": s.key_hash,
            "created_at": _aware(s.created_at),
            "expire_date": _aware(s.expire_date),
            "current": s.key_hash == current,
        }
        for s in mongo_sessions.user_sessions(request.user)
    ]
    return JsonResponse(
        {
            "sessions": [
                {
                    **row,
                    "created_at": _iso(row["created_at"]),
                    "expire_date": _iso(row["expire_date"]),
                }
                for row in rows
            ]
        }
    )


@require_POST
@never_cache
def revoke_others(request: HttpRequest) -> HttpResponseBase:
    """Log out my other devices: delete every session of the user but this one."""
    if (denied := _login_required(request)) is not None:
        return denied
    revoked = mongo_sessions.revoke_user_sessions(request.user, keep=request.session.session_key)
    if wants_json(request):
        return JsonResponse({"revoked": revoked})
    messages.success(request, f"Logged out {revoked} other session{'' if revoked == 1 else 's'}.")
    return redirect("mongo_sessions:list")


@require_GET
@ensure_csrf_cookie
@never_cache
def session_detail(request: HttpRequest) -> HttpResponse:
    """The current session as it is stored in MongoDB."""
    data = dict(request.session.items())  # loads the session (a stale key becomes None)
    key = request.session.session_key
    document = connection.get_collection().find_one({"_id": key}) if key else None
    info = connection.describe_connection()
    payload = {
        "session_key_hash": mongo_sessions.hash_session_key(key) if document else None,
        "size": len(bson.encode(document)) if document else 0,
        "expire_date": _iso(document.get("expire_date")) if document else None,
        "style": info.get("style"),
        "address": info.get("address"),
    }
    if wants_json(request):
        return JsonResponse(payload)
    return render(
        request,
        "demo/session.html",
        {
            **payload,
            "expire_date": _aware(document.get("expire_date")) if document else None,
            "created_at": _aware(document.get("created_at")) if document else None,
            "user_id": document.get("user_id") if document else None,
            "stored_data": document.get("data") if document else None,
            "session_data": json.dumps(
                {k: HIDDEN if k in HIDDEN_KEYS else v for k, v in data.items()},
                indent=2,
                sort_keys=True,
                default=str,
            ),
            "connection": info,
        },
    )


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """200 when MongoDB answers a ping through the session store's connection."""
    try:
        connection.ping()
    except (SessionStoreError, PyMongoError) as exc:
        logger.warning("health check failed: %s", exc)
        return JsonResponse({"status": "unavailable"}, status=503)
    return JsonResponse({"status": "ok"})
