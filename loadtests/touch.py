"""``python -m loadtests.touch``: what MONGO_SESSIONS_TOUCH_AFTER saves on read-only requests.

A read-only request (the view reads the session, changes nothing) is run
through ``mongo_sessions.middleware.SessionMiddleware`` with
``SESSION_SAVE_EVERY_REQUEST = True`` (how Django sites get sliding expiry), in
three variants, for a small and a large session, next to Django's default
(no ``SESSION_SAVE_EVERY_REQUEST``, no sliding expiry: a find only) and to
the touch rule without ``SESSION_SAVE_EVERY_REQUEST`` (the package's
middleware touches read-only requests itself, and skips the check for data
changed in place, which Django would not save there either):

* ``touch off``: what Django does, a find and an update of the whole session;
* ``touch on, within``: MONGO_SESSIONS_TOUCH_AFTER = 300 and the last extension
  is recent: a find, nothing written;
* ``touch on, past``: the last extension is older than the window (set up
  before each request, outside the measurement): a find and an update of the
  expiry alone.

For each it reports the commands sent, the bytes of those commands, and the
median client CPU (``time.thread_time_ns()``) and wall time per request, the
variants taking turns request by request in one process. MongoDB is the
embedded SecantusDB unless ``MONGO_SESSIONS_URL`` is set.
"""

from __future__ import annotations

import argparse
import gc
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import bson
import pymongo
from pymongo import monitoring
from pymongo.collection import Collection

from .results import machine
from .stores import mongo_for_run

TOUCH_AFTER = 300.0
SIZES = {"small": {"cart": {"apple": 2, "bread": 1}, "visits": 7}, "large": None}


class Sent(monitoring.CommandListener):
    """Record the name and size of each command while ``on``; idle otherwise."""

    def __init__(self) -> None:
        self.on = False
        self.commands: list[tuple[str, int]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.on and event.command_name not in ("hello", "ismaster", "endSessions"):
            self.commands.append((event.command_name, len(bson.encode(event.command))))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@dataclass
class Variant:
    name: str
    size: str
    touch_after: float | None
    past_window: bool
    save_every_request: bool = True
    key: str = ""
    cpu_us: list[float] = field(default_factory=list)
    wall_us: list[float] = field(default_factory=list)
    commands: list[tuple[str, int]] = field(default_factory=list)


def _large_session() -> dict[str, Any]:
    # Random, so that compression does not shrink it: about 20 KB stored.
    return {"viewed": [secrets.token_hex(16) for _ in range(600)], "visits": 7}


def configure(mongo_url: str, collection: str, listener: Sent) -> None:
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="loadtests-touch-" + secrets.token_hex(16),
        USE_TZ=True,
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
        DATABASES={},
        SESSION_ENGINE="mongo_sessions.session",
        SESSION_SAVE_EVERY_REQUEST=True,
        MONGO_SESSIONS_URL=mongo_url,
        MONGO_DB_NAME="loadtests",
        MONGO_SESSIONS_COLLECTION=collection,
        MONGO_SESSIONS_CLIENT_OPTIONS={"event_listeners": [listener]},
        LOGGING_CONFIG=None,
    )
    django.setup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.touch", description=__doc__)
    parser.add_argument("--iterations", type=int, default=500, help="timed requests per variant")
    parser.add_argument("--warmup", type=int, default=50, help="untimed requests per variant")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="loadtests-touch-") as tmp,
        mongo_for_run(Path(tmp) / "mongo") as (url, embedded),
    ):
        print(render(bench(url, args.warmup, args.iterations), embedded, args.iterations))
    return 0


# (label, MONGO_SESSIONS_TOUCH_AFTER, past the window, SESSION_SAVE_EVERY_REQUEST), per size.
VARIANTS = (
    ("no save-every-request, touch off (no sliding expiry)", None, False, False),
    ("touch off (full update)", None, False, True),
    ("touch on, within the window", TOUCH_AFTER, False, True),
    ("touch on, past the window", TOUCH_AFTER, True, True),
    ("no save-every-request, touch on, within the window", TOUCH_AFTER, False, False),
    ("no save-every-request, touch on, past the window", TOUCH_AFTER, True, False),
)


def bench(url: str, warmup: int, iterations: int) -> list[Variant]:
    """Measure every variant against the MongoDB at ``url`` and return them with their figures.

    Each variant first sends one request whose commands are recorded; then the
    variants take turns for ``warmup`` untimed and ``iterations`` timed requests.
    """
    from mongo_sessions import connection

    listener = Sent()
    collection_name = f"touch_{secrets.token_hex(4)}"
    configure(url, collection_name, listener)
    direct: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        url, serverSelectionTimeoutMS=5000
    )
    documents = direct["loadtests"][collection_name]
    variants = [
        Variant(f"{size}: {label}", size, touch, past, every)
        for size in SIZES
        for label, touch, past, every in VARIANTS
    ]
    _save_sessions(variants)
    prepare = _preparer(documents)
    try:
        _record_commands(variants, prepare, listener)
        gc.collect()
        _time_requests(variants, prepare, warmup, iterations)
    finally:
        documents.drop()
        direct.close()
        connection.reset()
    return variants


def _save_sessions(variants: list[Variant]) -> None:
    """Save one session of its size for each variant, and note its key."""
    from mongo_sessions.session import SessionStore

    for variant in variants:
        session = SessionStore()
        session.update(SIZES[variant.size] or _large_session())
        session.save()
        variant.key = session.session_key or ""


def _preparer(documents: Collection[dict[str, Any]]) -> Callable[[Variant], Callable[[], Any]]:
    """Return a function that sets a variant up and returns its read-only request, ready to run."""
    from django.conf import settings
    from django.core.signals import setting_changed
    from django.http import HttpRequest, HttpResponse
    from django.test import RequestFactory

    from mongo_sessions.middleware import SessionMiddleware

    def view(request: HttpRequest) -> HttpResponse:
        request.session.get("visits")
        return HttpResponse("ok")

    middleware = SessionMiddleware(view)
    factory = RequestFactory()

    def prepare(variant: Variant) -> Callable[[], Any]:
        # Assigned as override_settings does it: the package keeps the settings it
        # read and reads one again when setting_changed says it changed.
        for name, value in (
            ("MONGO_SESSIONS_TOUCH_AFTER", variant.touch_after),
            ("SESSION_SAVE_EVERY_REQUEST", variant.save_every_request),
        ):
            setattr(settings, name, value)
            setting_changed.send(sender=type(settings), setting=name, value=value, enter=True)
        if variant.past_window:
            document = documents.find_one({"_id": variant.key}, {"expire_date": 1})
            assert document is not None, "the variant's session is gone"
            older = document["expire_date"] - timedelta(seconds=TOUCH_AFTER + 1)
            documents.update_one({"_id": variant.key}, {"$set": {"expire_date": older}})
        request = factory.get("/")
        request.COOKIES[settings.SESSION_COOKIE_NAME] = variant.key
        return lambda: middleware(request)

    return prepare


def _record_commands(
    variants: list[Variant], prepare: Callable[[Variant], Callable[[], Any]], listener: Sent
) -> None:
    """Send one request per variant and keep the commands it sent."""
    for variant in variants:
        call = prepare(variant)
        listener.on, listener.commands = True, []
        call()
        listener.on = False
        variant.commands = listener.commands


def _time_requests(
    variants: list[Variant],
    prepare: Callable[[Variant], Callable[[], Any]],
    warmup: int,
    iterations: int,
) -> None:
    """Run the variants in turn; keep the client CPU and wall time of the requests past warmup."""
    for i in range(warmup + iterations):
        for variant in variants:
            call = prepare(variant)
            w0 = time.perf_counter_ns()
            c0 = time.thread_time_ns()
            call()
            c1 = time.thread_time_ns()
            w1 = time.perf_counter_ns()
            if i >= warmup:
                variant.cpu_us.append((c1 - c0) / 1000)
                variant.wall_us.append((w1 - w0) / 1000)


def render(variants: list[Variant], embedded: bool, iterations: int) -> str:
    store = "embedded SecantusDB" if embedded else "MONGO_SESSIONS_URL"
    lines = [
        f"Read-only request, SESSION_SAVE_EVERY_REQUEST = True unless said, {store}; {machine()}",
        f"{iterations} requests per variant, variants interleaved; medians",
        "",
        "| Session | Variant | Commands | Bytes sent | Client CPU µs | Wall µs |",
        "|---------|---------|----------|-----------:|--------------:|--------:|",
    ]
    for v in variants:
        names = ", ".join(name for name, _ in v.commands)
        sent = " + ".join(str(size) for _, size in v.commands)
        size, _, label = v.name.partition(": ")
        lines.append(
            f"| {size} | {label} | {len(v.commands)}: {names} | {sent} | "
            f"{statistics.median(v.cpu_us):.0f} | {statistics.median(v.wall_us):.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
