"""MONGO_SESSIONS_FORMAT (E050, E051) and MONGO_SESSIONS_COMPRESS_MIN_LENGTH (E052)."""

from __future__ import annotations

from typing import Any

from django.core.signing import JSONSerializer
from django.utils.module_loading import import_string

from ..conf import conf
from .problem import Problem

#: The values of MONGO_SESSIONS_FORMAT.
SIGNED, DOCUMENT = "signed", "document"


def format_problems() -> list[Problem]:
    """Return the problems of MONGO_SESSIONS_FORMAT with SESSION_SERIALIZER, and of
    MONGO_SESSIONS_COMPRESS_MIN_LENGTH."""
    problems = [compress_problem(conf.MONGO_SESSIONS_COMPRESS_MIN_LENGTH)]
    try:
        serializer = import_string(conf.SESSION_SERIALIZER)
    except ImportError:
        pass  # Django itself fails on it first; nothing to say about the format
    else:
        problems.append(format_problem(conf.MONGO_SESSIONS_FORMAT, serializer))
    return [problem for problem in problems if problem is not None]


def format_problem(name: Any, serializer: Any) -> Problem | None:
    """Return E050 for an unknown format, E051 for the document format without JSON.

    ``serializer`` is the SESSION_SERIALIZER class: the document format stores
    what Django's JSONSerializer stores, and needs that serializer.
    """
    if name not in (SIGNED, DOCUMENT):
        return Problem(
            id="mongo_sessions.E050",
            setting="MONGO_SESSIONS_FORMAT",
            message=f'MONGO_SESSIONS_FORMAT must be "signed" or "document", not {name!r}',
            hint='"signed" (the default) stores what Django\'s database engine stores; '
            '"document" stores the session as a sub-document MongoDB can query.',
        )
    if name == DOCUMENT and serializer is not JSONSerializer:
        module = getattr(serializer, "__module__", "?")
        qualname = getattr(serializer, "__qualname__", type(serializer).__name__)
        return Problem(
            id="mongo_sessions.E051",
            setting="MONGO_SESSIONS_FORMAT",
            message='MONGO_SESSIONS_FORMAT = "document" stores what Django\'s JSONSerializer '
            f"stores, and SESSION_SERIALIZER is {module}.{qualname}",
            hint='Use "django.contrib.sessions.serializers.JSONSerializer" (the default), or '
            'keep MONGO_SESSIONS_FORMAT = "signed".',
        )
    return None


def compress_problem(length: Any) -> Problem | None:
    """Return E052 if ``length`` (MONGO_SESSIONS_COMPRESS_MIN_LENGTH) is not a whole
    number of bytes, 0 or more."""
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        return Problem(
            id="mongo_sessions.E052",
            setting="MONGO_SESSIONS_COMPRESS_MIN_LENGTH",
            message="MONGO_SESSIONS_COMPRESS_MIN_LENGTH must be a whole number of bytes, "
            f"0 or more, not {length!r}",
            hint="The signed format compresses serialized data of at least this many bytes "
            "(default 512) when that makes it shorter; 0 compresses whenever it does, as "
            "Django does.",
        )
    return None
