"""The package's one clock: aware UTC datetimes, and Django's datetimes turned into them."""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta, timezone

from django.conf import settings
from django.utils import timezone as django_timezone

# The first and last instants a datetime can hold (and a BSON date read back as one).
EARLIEST = datetime.min.replace(tzinfo=timezone.utc)
LATEST = datetime.max.replace(tzinfo=timezone.utc)


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


def to_utc(value: datetime) -> datetime:
    """Return the instant that ``value`` stands for in Django, as an aware UTC datetime.

    An aware datetime is converted. A naive one is read as Django reads it, never
    in the time zone activated with ``timezone.activate()``:

    * with ``USE_TZ = True``, in the default time zone (``TIME_ZONE``), as a
      ``DateTimeField`` stores it (with the same ``RuntimeWarning``);
    * with ``USE_TZ = False``, Django compares naive datetimes with the naive
      ``timezone.now()`` (the process's local clock: ``TIME_ZONE`` when the
      settings come from a module, the host's zone under ``settings.configure()``),
      so what counts is the time left, ``value - timezone.now()``, which is
      added to the current UTC time.

    An instant outside the range of ``datetime`` (years 1 to 9999 UTC) is
    returned as ``EARLIEST`` or ``LATEST``.
    """
    try:
        if django_timezone.is_aware(value):
            return value.astimezone(timezone.utc)
        if settings.USE_TZ:
            warnings.warn(
                f"mongo_sessions received a naive datetime ({value}) while time zone "
                "support is active; it is read in TIME_ZONE.",
                RuntimeWarning,
                stacklevel=2,
            )
            default = django_timezone.get_default_timezone()
            return django_timezone.make_aware(value, default).astimezone(timezone.utc)
        return utc_now() + (value - django_timezone.now())
    except OverflowError:
        # Only a few hours away from year 1 or 9999: the nearest end is the answer.
        return LATEST if value.year > datetime.max.year // 2 else EARLIEST


def utc_after(seconds: float, now: datetime | None = None) -> datetime:
    """Return the aware UTC instant ``seconds`` after ``now`` (default: the current time),
    clamped to the range of datetime.

    Raises TypeError or ValueError (NaN) for a value that is not a number of seconds.
    """
    try:
        return (now or utc_now()) + timedelta(seconds=seconds)
    except OverflowError:
        return LATEST if seconds > 0 else EARLIEST


def to_django(value: datetime) -> datetime:
    """Return an aware UTC instant as Django code compares datetimes.

    With ``USE_TZ = True``, the aware UTC datetime itself; with ``USE_TZ = False``
    a naive datetime on the clock of ``timezone.now()`` (the inverse of ``to_utc``).
    """
    if settings.USE_TZ:
        return value
    try:
        return django_timezone.now() + (value - utc_now())
    except OverflowError:
        return datetime.max if value.year > datetime.max.year // 2 else datetime.min
