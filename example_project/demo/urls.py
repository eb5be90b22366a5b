"""URLs of the demo site."""

from __future__ import annotations

from django.urls import include, path

from demo import views

urlpatterns = [
    path("", views.home, name="home"),
    path("counter/", views.counter, name="counter"),
    path("cart/", views.cart, name="cart"),
    path("cart/add/", views.cart_add, name="cart-add"),
    path("cart/remove/", views.cart_remove, name="cart-remove"),
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    # The package's "Your sessions" pages: list the devices, end one, end all others.
    path("account/sessions/", include("mongo_sessions.urls")),
    # JSON for scripts and the load tests; browsers are sent to account/sessions/.
    path("sessions/", views.sessions_list, name="sessions"),
    path("sessions/revoke-others/", views.revoke_others, name="revoke-others"),
    path("session/", views.session_detail, name="session"),
    path("health/", views.health, name="health"),
]
