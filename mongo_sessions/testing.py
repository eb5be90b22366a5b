"""Helpers for tests of sites using mongo_sessions.

* ``CommandCounter``: count the commands the session store sends, or only
  those of its sync or of its async client (``client="sync"``/``"async"``).
* ``isolated_sessions_collection()``, the ``isolated_sessions`` pytest fixture
  and ``IsolatedSessionsMixin`` for Django's ``TestCase``: give each test an
  empty sessions collection of its own. Django's test cases roll back the SQL
  database only, so without them the sessions of one test (``client.login()``,
  say) are still in MongoDB in the next, and show up in ``user_sessions()``
  when user ids are reused.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import uuid
from collections.abc import Iterator

from pymongo import monitoring

from .conf import conf
from .connection import get_collection, get_target, stop_auto_index
from .exceptions import SessionStoreError
from .operation import mongo_operation

logger = logging.getLogger("mongo_sessions")

# Commands the driver sends on its own (handshakes, monitoring, auth, cleanup).
DRIVER_COMMANDS = frozenset(
    {
        "hello",
        "ismaster",
        "isMaster",
        "ping",
        "endSessions",
        "saslStart",
        "saslContinue",
        "buildInfo",
        "getLastError",
    }
)
# The automatic index creation's commands: it runs in a background thread, at a
# time of its own, never as part of a session operation.
HOUSEKEEPING_COMMANDS = frozenset({"listCollections", "createIndexes"})
_NOT_COUNTED = DRIVER_COMMANDS | HOUSEKEEPING_COMMANDS
WRITE_COMMANDS = frozenset({"insert", "update", "delete", "findAndModify"})


class CommandCounter(monitoring.CommandListener):
    """Record the name of each command a client sends, but the driver's and the housekeeping's.

    Give it to the package's clients with
    ``MONGO_SESSIONS_CLIENT_OPTIONS = {"event_listeners": [counter]}``. The
    package's sync ``MongoClient`` and async ``AsyncMongoClient`` get the same
    listeners; ``client="sync"`` or ``client="async"`` makes a counter count only
    the commands of that kind of client (told apart by the pymongo API,
    ``pymongo.synchronous`` or ``pymongo.asynchronous``, that sent them), so one
    counter per client shows which one a request used.
    """

    def __init__(self, client: str | None = None) -> None:
        if client not in (None, "sync", "async"):
            raise ValueError(f"client must be None, 'sync' or 'async', not {client!r}")
        self.client = client
        self.commands: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in _NOT_COUNTED:
            return
        if self.client is not None and _sending_client() != self.client:
            return
        self.commands.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def reset(self) -> None:
        self.commands.clear()

    @property
    def writes(self) -> list[str]:
        return [name for name in self.commands if name in WRITE_COMMANDS]


def _sending_client() -> str | None:
    """Return "sync" or "async": which pymongo API is publishing the current command."""
    frame = inspect.currentframe()
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if module.startswith("pymongo.asynchronous."):
            return "async"
        if module.startswith("pymongo.synchronous."):
            return "sync"
        frame = frame.f_back
    return None


@contextlib.contextmanager
def isolated_sessions_collection() -> Iterator[str]:
    """Keep the sessions of the enclosed code in a collection of their own; drop it after.

    Yields the collection's name: ``MONGO_SESSIONS_COLLECTION`` followed by
    ``_test_`` and 12 random hex digits, in the configured database. The setting
    is overridden with ``override_settings`` for the block, so every session
    made inside it (``client.login()``, ``SessionStore()``, the middleware, sync
    or async) goes there: no other collection is read, emptied or dropped, and
    parallel test processes do not meet. Call ``empty_sessions_collection()``
    between tests. On exit the collection is dropped (one ``drop`` command,
    bounded by ``MONGO_SESSIONS_TIMEOUT`` seconds); if MongoDB cannot be reached
    then, a warning naming the collection left behind is logged to the
    ``mongo_sessions`` logger instead of failing the tests' teardown.
    """
    from django.test.utils import override_settings  # django.test is heavy: only when used

    name = f"{conf.MONGO_SESSIONS_COLLECTION}_test_{uuid.uuid4().hex[:12]}"
    with override_settings(MONGO_SESSIONS_COLLECTION=name):
        try:
            yield name
        finally:
            # An index creation still running would create the collection again after the drop.
            stop_auto_index(conf.MONGO_SESSIONS_TIMEOUT)
            try:
                with mongo_operation("test collection drop"):
                    get_target().collection.drop()
            except SessionStoreError as e:
                logger.warning("mongo_sessions: test collection %s was not dropped: %s", name, e)


def empty_sessions_collection() -> int:
    """Delete every session of the current sessions collection; return how many (an int).

    Meant for the collection of ``isolated_sessions_collection()``, between
    tests: one ``delete`` command, bounded by ``MONGO_SESSIONS_TIMEOUT``
    seconds. Raises ``SessionStoreError`` when MongoDB fails or does not answer.
    """
    with mongo_operation("test collection emptying"):
        return get_collection().delete_many({}).deleted_count


class IsolatedSessionsMixin:
    """Give each test of a Django (or ``unittest``) ``TestCase`` an empty sessions collection.

    Put it first among the bases: ``class MyTests(IsolatedSessionsMixin,
    TestCase)``. The class's tests share a collection of their own
    (``isolated_sessions_collection()``, named in
    ``cls.sessions_collection_name``), dropped after the last one, and
    ``setUp`` empties it before each test: a ``setUp`` of your own must call
    ``super().setUp()``. Sessions made in ``setUpClass`` or ``setUpTestData``
    are therefore gone when a test starts.
    """

    sessions_collection_name: str

    @classmethod
    def setUpClass(cls) -> None:
        context = isolated_sessions_collection()
        cls.sessions_collection_name = context.__enter__()
        cls.addClassCleanup(context.__exit__, None, None, None)  # type: ignore[attr-defined]
        super().setUpClass()  # type: ignore[misc]

    def setUp(self) -> None:
        empty_sessions_collection()
        super().setUp()  # type: ignore[misc]


try:
    import pytest
except ImportError:  # pytest is optional: without it there are no fixtures to offer
    pass
else:

    @pytest.fixture(scope="session")
    def mongo_sessions_test_collection() -> Iterator[str]:
        """Pytest fixture: the sessions collection of this test run, dropped at its end.

        From the first test that uses it (directly or through
        ``isolated_sessions``) to the end of the run, sessions go to this
        collection (see ``isolated_sessions_collection()``); yields its name.
        """
        with isolated_sessions_collection() as name:
            yield name

    @pytest.fixture
    def isolated_sessions(mongo_sessions_test_collection: str) -> str:
        """Pytest fixture: this test starts with an empty sessions collection; returns its name.

        The collection is the run's own (``mongo_sessions_test_collection``),
        emptied before the test. Make the fixtures available with
        ``pytest_plugins = ["mongo_sessions.testing"]`` in the top-level
        ``conftest.py``, then request ``isolated_sessions`` by name, with
        ``@pytest.mark.usefixtures("isolated_sessions")``, or for every test
        from an autouse fixture of your own.
        """
        empty_sessions_collection()
        return mongo_sessions_test_collection
