"""URLs for tests that drive the demo's own views in this process (Django's test client).

The demo's URLs (``example_project/demo/urls.py``, so ``example_project`` must be
on ``sys.path`` when Django first resolves a URL), plus ``/whoami/``: who is
logged in and what is in the cart, in JSON, whatever the demo's pages answer.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import include, path


def whoami(request: HttpRequest) -> JsonResponse:
    user = request.user.get_username() if request.user.is_authenticated else None
    return JsonResponse({"user": user, "cart": request.session.get("cart", {})})


urlpatterns = [path("whoami/", whoami), path("", include("demo.urls"))]
