"""Calls retried on an empty stack: data nested deeper than the caller's stack allows.

Whether a session can be saved or loaded depends on its data only, never on
how deep the caller's stack already is.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from . import driver

_T = TypeVar("_T")


def on_fresh_stack(function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Run ``function(*args, **kwargs)`` in a new thread, whose stack starts empty; wait for it.

    The thread runs in a copy of the caller's context, so the time bound of the
    enclosing mongo_operation() (pymongo.timeout's context variables) holds there too.
    """
    outcome: dict[str, Any] = {}
    context = contextvars.copy_context()

    def run() -> None:
        try:
            outcome["value"] = context.run(function, *args, **kwargs)
        except BaseException as e:
            outcome["error"] = e

    thread = threading.Thread(target=run, name="mongo_sessions-deep-data")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    value: _T = outcome["value"]
    return value


def deep_safe(call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Make a driver call; on a RecursionError, make it again on an empty stack.

    pymongo encodes and decodes nested documents recursively: a session in the
    document format nested a few dozen levels deep, saved or loaded from a
    caller's stack already near Python's recursion limit, fails in the driver.
    Encoding comes before anything is sent, and a load is a read, so making the
    call again changes nothing on the server.
    """
    try:
        return call(*args, **kwargs)
    except RecursionError:
        return on_fresh_stack(call, *args, **kwargs)
    except driver.bson_errors.InvalidBSON as e:
        if "recursion" not in str(e):  # pymongo's decoder reports its RecursionError so
            raise
        return on_fresh_stack(call, *args, **kwargs)
