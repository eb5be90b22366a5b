"""URLs of the demo site: HTML pages, the JSON API under ``/api/``, and ``/health/``."""

from __future__ import annotations

from django.urls import include, path

from demo import api, views

urlpatterns = [
    path("", views.home, name="home"),
    path("counter/", views.counter, name="counter"),
    path("cart/", views.cart, name="cart"),
    path("cart/add/", views.cart_add, name="cart-add"),
    path("cart/remove/", views.cart_remove, name="cart-remove"),
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    # The package's "Your sessions" pages: list the devices, end one, end all others
    # (the JSON of the same list is /api/sessions/).
    path("account/sessions/", include("mongo_sessions.urls")),
    path("session/", views.session_detail, name="session"),
    path("api/", include(api)),
    path("health/", api.health, name="health"),
]
