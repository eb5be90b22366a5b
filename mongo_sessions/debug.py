"""An exception reporter filter that keeps MongoDB passwords off Django's error pages.

Django hides settings whose *names* look secret (``MONGO_DB_PASSWORD``), not a
password inside ``MONGO_SESSIONS_URL``, and with ``DEBUG = True`` it shows every
local variable of every frame (``sensitive_variables`` only acts when ``DEBUG``
is off). Use this filter::

    DEFAULT_EXCEPTION_REPORTER_FILTER = "mongo_sessions.debug.SafeExceptionReporterFilter"

It replaces every MongoDB password the settings hold (see
``passwords.configured_passwords``), raw or URL-escaped, wherever it appears on
the page or in the e-mail that ``AdminEmailHandler`` sends: settings, local
variables of any frame (the package's, pymongo's, yours), ``request.META``
(environment variables under ``runserver``), cookies and POST data.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, QueryDict
from django.utils.module_loading import import_string
from django.views.debug import SafeExceptionReporterFilter as DjangoFilter

from .passwords import REDACTED, configured_passwords, contains_secret, scrub_text
from .redaction import SessionKey

FILTER_PATH = "mongo_sessions.debug.SafeExceptionReporterFilter"


class SafeExceptionReporterFilter(DjangoFilter):
    """Django's filter, plus: no MongoDB password anywhere in the report.

    Strings keep their readable part (``mongodb://app:********@db/``); any
    other value whose ``repr()`` holds a password is replaced as a whole. A
    session key (``redaction.SessionKey``), alone or inside a dict, list or
    tuple, is kept as it is, so the page still shows its hash, not the key.
    """

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        return self._scrub(super().cleanse_setting(key, value), configured_passwords())

    def get_safe_request_meta(self, request: HttpRequest) -> dict[str, Any]:
        secrets = configured_passwords()
        meta = super().get_safe_request_meta(request)
        return {key: self._scrub(value, secrets) for key, value in meta.items()}

    def get_post_parameters(self, request: HttpRequest | None) -> Any:
        parameters = super().get_post_parameters(request)
        secrets = configured_passwords()
        if not isinstance(parameters, QueryDict) or not secrets:
            return parameters
        if not contains_secret(repr(parameters), secrets):
            return parameters
        cleansed = parameters.copy()
        for key in cleansed:
            cleansed.setlist(key, [self._scrub(v, secrets) for v in cleansed.getlist(key)])
        return cleansed

    def get_traceback_frame_variables(self, request: HttpRequest | None, tb_frame: Any) -> Any:
        secrets = configured_passwords()
        variables = super().get_traceback_frame_variables(request, tb_frame)
        if not secrets:
            return variables
        return [(name, self._scrub(value, secrets)) for name, value in variables]

    def _scrub(self, value: Any, secrets: set[str]) -> Any:
        if not secrets:
            return value
        if isinstance(value, SessionKey):
            # Kept as it is: its repr() is a hash, and a plain str (what
            # scrub_text returns) would put the raw session key on the page.
            return REDACTED if contains_secret(str(value), secrets) else value
        if isinstance(value, str):
            scrubbed = scrub_text(value, secrets)
            # An unchanged subclass of str keeps its own repr().
            return value if scrubbed == value else scrubbed
        if isinstance(value, dict):
            return {k: self._scrub(v, secrets) for k, v in value.items()}
        if type(value) in (list, tuple):
            return type(value)(self._scrub(v, secrets) for v in value)
        try:
            text = repr(value)
        except Exception:
            return value  # Django shows its own "<unprintable>" text for it.
        return REDACTED if contains_secret(text, secrets) else value


def filter_in_use() -> bool:
    """Return whether DEFAULT_EXCEPTION_REPORTER_FILTER is this filter or a subclass of it."""
    path = getattr(settings, "DEFAULT_EXCEPTION_REPORTER_FILTER", "")
    try:
        configured = import_string(path) if isinstance(path, str) else path
    except ImportError:
        return False
    return isinstance(configured, type) and issubclass(configured, SafeExceptionReporterFilter)
