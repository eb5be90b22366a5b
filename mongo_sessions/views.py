"""Views of the "my devices" pages (see ``mongo_sessions.urls``).

Every view requires a signed-in user (``login_required``: others are sent to
``LOGIN_URL``) and is never cached; the two that end sessions accept POST only,
with Django's CSRF check. They use the package's sync API, so under ASGI
Django runs them in its worker thread with the sync client.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_POST

from .redaction import hash_session_key
from .users import revoke_session, revoke_user_sessions, user_sessions

TEMPLATE = "mongo_sessions/session_list.html"
KEY_HASH_LENGTH = 16


def _current_hash(request: HttpRequest) -> str | None:
    key = request.session.session_key
    return hash_session_key(key) if key else None


def _tell(request: HttpRequest, text: str) -> None:
    # Only where django.contrib.messages is set up; the pages work without it.
    messages.success(request, text, fail_silently=True)


@never_cache
@login_required
@require_GET
def session_list(request: HttpRequest) -> HttpResponse:
    """List the user's live sessions, newest first, the current one marked."""
    current = _current_hash(request)
    rows: list[dict[str, Any]] = [
        {"session": session, "current": session.key_hash == current}
        for session in user_sessions(request.user)
    ]
    return render(
        request, TEMPLATE, {"sessions": rows, "others": sum(not r["current"] for r in rows)}
    )


@never_cache
@csrf_protect
@login_required
@require_POST
def end_session(request: HttpRequest) -> HttpResponseBase:
    """End the session whose ``key_hash`` is posted; ending the current one logs out."""
    key_hash = request.POST.get("key_hash", "")
    if len(key_hash) != KEY_HASH_LENGTH:
        return HttpResponseBadRequest("key_hash must be a session's 16-character hash.")
    if key_hash == _current_hash(request):
        logout(request)
        return redirect("mongo_sessions:list")  # login_required sends it to LOGIN_URL
    if revoke_session(request.user, key_hash):
        _tell(request, "The session was ended.")
    else:
        _tell(request, "That session had already ended.")
    return redirect("mongo_sessions:list")


@never_cache
@csrf_protect
@login_required
@require_POST
def end_other_sessions(request: HttpRequest) -> HttpResponseBase:
    """End every session of the user except the current one."""
    count = revoke_user_sessions(request.user, keep=request.session.session_key)
    _tell(request, f"Ended {count} other session{'' if count == 1 else 's'}.")
    return redirect("mongo_sessions:list")
