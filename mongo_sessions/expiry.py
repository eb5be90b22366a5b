"""The expiry a session is stored with: Django's hooks, and MONGO_SESSIONS_TTL.

Part of ``SessionStore`` (see ``session.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.sessions.backends.base import SessionBase

from .clock import to_utc, utc_after
from .conf import conf
from .exceptions import SessionDataError
from .validation import ttl_seconds


class ExpiryMixin(SessionBase):
    """The expiry date of the stored document, for SessionStore."""

    def _expire_date(self, data: dict[str, Any], now: datetime | None = None) -> datetime:
        """Return the instant (aware, UTC) from which the session is dead on the server.

        Ages count from ``now`` (default: the current time).

        Django's hooks decide, in this order:

        1. a subclass's ``get_expiry_date()``, as Django's database engine stores it;
        2. else a subclass's ``get_expiry_age()``, in seconds from now, as Django's
           cache engine stores it (and as SessionMiddleware sets the cookie);
        3. else the expiry given to ``set_expiry()``: seconds, or a datetime read
           as Django reads it (see ``clock.to_utc``);
        4. else (no expiry, or 0 for browser-close) ``get_session_cookie_age()``
           seconds from now, with ``MONGO_SESSIONS_TTL``, when set, in place of
           ``SESSION_COOKIE_AGE`` (a subclass's ``get_session_cookie_age()`` that
           returns another value for this session still decides).

        The sync hooks are called from save() and asave() alike: they only read the
        loaded session. An instant beyond year 9999 (or before year 1) is stored as
        that year's end (or start). Raises SessionDataError for an expiry that is
        not a number of seconds or a datetime.
        """
        expiry = data.get("_session_expiry")
        cls = type(self)
        try:
            if cls.get_expiry_date is not SessionBase.get_expiry_date:
                return to_utc(self.get_expiry_date())
            if cls.get_expiry_age is not SessionBase.get_expiry_age:
                return utc_after(self.get_expiry_age(), now)
            if not expiry:
                return utc_after(self._server_lifetime(), now)
            if isinstance(expiry, str):
                expiry = datetime.fromisoformat(expiry)
            if isinstance(expiry, datetime):
                return to_utc(expiry)
            return utc_after(expiry, now)
        except (TypeError, ValueError) as e:
            raise SessionDataError(
                "save", f"the session expiry {expiry!r} cannot be stored: {type(e).__name__}: {e}"
            ) from e

    def _server_lifetime(self) -> int:
        """Return the seconds a session without an explicit expiry lives on the server."""
        if type(self).get_session_cookie_age is SessionBase.get_session_cookie_age:
            return ttl_seconds()  # Django's own reads SESSION_COOKIE_AGE: no need to ask it
        age = self.get_session_cookie_age()
        if age == conf.SESSION_COOKIE_AGE:
            return ttl_seconds()
        return int(age)
