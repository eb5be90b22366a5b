"""Views of the ASGI test site: async views using the session, and the command counts."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import aauthenticate, alogin, alogout
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt


async def counter(request: HttpRequest) -> JsonResponse:
    visits = await request.session.aget("visits", 0) + 1
    await request.session.aset("visits", visits)
    return JsonResponse({"visits": visits})


async def read(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"visits": await request.session.aget("visits")})


def sync_read(request: HttpRequest) -> JsonResponse:
    # A sync view: Django runs it in a worker thread, where it finds the session loaded.
    user = request.user.get_username() if request.user.is_authenticated else None
    return JsonResponse({"visits": request.session.get("visits"), "user": user})


@csrf_exempt
async def login(request: HttpRequest) -> JsonResponse:
    user = await aauthenticate(
        request, username=request.POST.get("username"), password=request.POST.get("password")
    )
    if user is None:
        return JsonResponse({"user": None}, status=401)
    await alogin(request, user)
    return JsonResponse({"user": user.get_username()})


async def whoami(request: HttpRequest) -> JsonResponse:
    user = await request.auser()
    return JsonResponse({"user": user.get_username() if user.is_authenticated else None})


@csrf_exempt
async def logout(request: HttpRequest) -> JsonResponse:
    await alogout(request)
    return JsonResponse({"user": None})


async def counts(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {"sync": settings.SYNC_COMMANDS.commands, "async": settings.ASYNC_COMMANDS.commands}
    )


async def reset_counts(request: HttpRequest) -> HttpResponse:
    settings.SYNC_COMMANDS.reset()
    settings.ASYNC_COMMANDS.reset()
    return HttpResponse("reset")


urlpatterns = [
    path("counter/", counter),
    path("read/", read),
    path("sync-read/", sync_read),
    path("login/", login),
    path("whoami/", whoami),
    path("logout/", logout),
    path("_counts/", counts),
    path("_counts/reset/", reset_counts),
]
