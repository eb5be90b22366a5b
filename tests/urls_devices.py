"""URLs of the tests of the "my devices" pages: the package's app, and a login to reach it."""

from __future__ import annotations

from django.contrib.auth import authenticate, login, logout
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def login_view(request: HttpRequest) -> HttpResponse:
    user = authenticate(
        request, username=request.POST.get("username"), password=request.POST.get("password")
    )
    if user is None:
        return HttpResponse("no", status=401)
    login(request, user)
    return HttpResponse("ok")


@csrf_exempt
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    return HttpResponse("bye")


def read_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(request.user.is_authenticated))


urlpatterns = [
    path("login/", login_view),
    path("logout/", logout_view),
    path("read/", read_view),
    path("account/sessions/", include("mongo_sessions.urls")),
]
