"""The demo's HTML pages: each one uses the session the way real sites do.

The same features answer in JSON under ``/api/`` (``demo/api.py``), for the
load tests and scripts; these views only render pages and redirect. The "My
sessions" pages (list the devices, end one, end all others) are the package's
own, included at ``account/sessions/`` (``mongo_sessions.urls``).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

import mongo_sessions
from demo.accounts import sign_in, truthy
from demo.decorators import session_view
from demo.state import CATALOGUE, UnknownItem, cart_of, cart_total, change_cart, count_visit

#: Session values not to show on /session/ (a hash derived from the password hash).
HIDDEN_KEYS = frozenset({"_auth_user_hash"})
HIDDEN = "(hidden)"


@require_GET
@ensure_csrf_cookie
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "demo/home.html", {"catalogue": CATALOGUE})


@session_view("GET", "POST")
def counter(request: HttpRequest) -> HttpResponse:
    """A visit counter: one session write on every visit."""
    return render(request, "demo/counter.html", {"visits": count_visit(request.session)})


@session_view("GET")
def cart(request: HttpRequest) -> HttpResponse:
    items = cart_of(request.session)
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
        {"lines": lines, "total": cart_total(items), "count": sum(items.values())},
    )


def _cart_change(delta: int) -> Callable[[HttpRequest], HttpResponse]:
    """The view that adds ``delta`` of the posted ``item`` to the cart, then shows the cart."""

    @require_POST
    @never_cache
    def view(request: HttpRequest) -> HttpResponse:
        item = request.POST.get("item", "").strip().lower()
        try:
            change_cart(request.session, item, delta)
        except UnknownItem:
            return HttpResponse(f"Unknown item {item!r}.", status=400, content_type="text/plain")
        return redirect("cart")

    return view


cart_add = _cart_change(+1)
cart_remove = _cart_change(-1)


def _safe_next(request: HttpRequest) -> str:
    """The ``next`` URL to go to after logging in, if it stays on this site."""
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return next_url
    return ""


@session_view("GET", "POST")
def login_view(request: HttpRequest) -> HttpResponse:
    next_url = _safe_next(request)
    error = ""
    if request.method == "POST":
        user = sign_in(
            request,
            request.POST.get("username", ""),
            request.POST.get("password", ""),
            remember=truthy(request.POST.get("remember", "")),
        )
        if user is not None:
            return redirect(next_url or settings.LOGIN_REDIRECT_URL)
        error = "Wrong username or password."
    return render(
        request,
        "demo/login.html",
        {"error": error, "next": next_url, "demo_username": settings.DEMO_USERNAME},
        status=401 if error else 200,
    )


@session_view("GET", "POST")
def logout_view(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        # logout() flushes the session: its document is deleted from MongoDB.
        logout(request)
        return redirect("login")
    return render(request, "demo/logout.html")


@session_view("GET")
def session_detail(request: HttpRequest) -> HttpResponse:
    """The current session as it is stored in MongoDB."""
    data = dict(request.session.items())  # loads the session (a stale key becomes None)
    stored = mongo_sessions.stored_session(request.session)
    info = mongo_sessions.describe_connection()
    shown = {k: HIDDEN if k in HIDDEN_KEYS else v for k, v in data.items()}
    return render(
        request,
        "demo/session.html",
        {
            "stored": stored,
            "session_data": json.dumps(shown, indent=2, sort_keys=True, default=str),
            "connection": info,
        },
    )
