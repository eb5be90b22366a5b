"""The "my devices" pages: ``path("account/sessions/", include("mongo_sessions.urls"))``.

URL names (namespace ``mongo_sessions``): ``list`` (GET: the signed-in user's
sessions), ``end`` (POST ``key_hash``: end that session) and ``end-others``
(POST: end every session of the user but the current one).
"""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "mongo_sessions"

urlpatterns = [
    path("", views.session_list, name="list"),
    path("end/", views.end_session, name="end"),
    path("end-others/", views.end_other_sessions, name="end-others"),
]
