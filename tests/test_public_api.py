"""The package's public API: importable from ``mongo_sessions`` without a connection,
and the only API the demo site (what adopters copy) uses."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import mongo_sessions
from tests.support import TEST_DB

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO_ROOT / "example_project" / "demo"
# Modules of the package that are public as modules: the exceptions to catch,
# and the helpers for adopters' tests.
PUBLIC_MODULES = {"mongo_sessions.exceptions", "mongo_sessions.testing"}


def run_python(code: str, env: dict[str, str] | None = None, cwd: Path = REPO_ROOT) -> str:
    """Run ``code`` in a fresh interpreter; return what it printed."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.no_mongo
def test_every_public_name_resolves() -> None:
    for name in mongo_sessions.__all__:
        assert callable(getattr(mongo_sessions, name)), name
        assert name in dir(mongo_sessions)
    with pytest.raises(AttributeError, match="no_such_name"):
        mongo_sessions.no_such_name  # noqa: B018


@pytest.mark.no_mongo
def test_import_loads_no_driver() -> None:
    out = run_python(
        """
        import sys
        import mongo_sessions
        print(sorted(m for m in sys.modules if m.split(".")[0] in {"pymongo", "mongo_sessions"}))
        """
    )
    assert out.strip() == "['mongo_sessions']"


def test_no_client_until_the_first_call(mongo_url: str) -> None:
    """Django's start-up and importing every public name open no client; ping() does."""
    out = run_python(
        f"""
        import json
        from pymongo import monitoring

        class Topologies(monitoring.TopologyListener):
            count = 0
            def opened(self, event): Topologies.count += 1
            def description_changed(self, event): pass
            def closed(self, event): pass

        import django
        from django.conf import settings
        settings.configure(
            INSTALLED_APPS=["mongo_sessions"],
            SESSION_ENGINE="mongo_sessions.session",
            MONGO_SESSIONS_URL={mongo_url.rstrip("/") + "/" + TEST_DB!r},
            MONGO_SESSIONS_CLIENT_OPTIONS={{"event_listeners": [Topologies()]}},
        )
        django.setup()
        from mongo_sessions import *  # every public name
        before = Topologies.count
        ping()
        print(json.dumps([before, Topologies.count, sorted(describe_connection())]))
        """
    )
    before, after, described = json.loads(out)
    assert before == 0, "a client was created before the first call"
    assert after == 1
    assert described == ["address", "collection", "database", "style"]


def test_driver_imported_on_first_use(settings: Any) -> None:
    """Django's start-up and the engine's import load no pymongo; the first operation does.

    pymongo's ``__init__`` imports its async client too, about 50 ms of a
    site's start-up (see mongo_sessions.driver).
    """
    out = run_python(
        f"""
        import json, sys

        def driver_modules():
            names = {{"pymongo", "bson", "gridfs"}}
            return sorted(m for m in sys.modules if m.split(".")[0] in names)

        import django
        from django.conf import settings
        settings.configure(
            SECRET_KEY="x" * 50,
            INSTALLED_APPS=[
                "django.contrib.contenttypes",
                "django.contrib.auth",
                "django.contrib.sessions",
                "mongo_sessions",
            ],
            SESSION_ENGINE="mongo_sessions.session",
            MONGO_SESSIONS_URL={settings.MONGO_SESSIONS_URL!r},
            MONGO_SESSIONS_COLLECTION={settings.MONGO_SESSIONS_COLLECTION!r},
            MONGO_SESSIONS_AUTO_INDEX=False,
        )
        django.setup()  # registers the package's checks (AppConfig.ready)
        import mongo_sessions.middleware
        import mongo_sessions.urls  # a URLconf that includes the "Your sessions" pages
        from mongo_sessions.session import SessionStore
        at_start = driver_modules()
        store = SessionStore()
        store["n"] = 1
        store.save()
        loaded = SessionStore(store.session_key).load()
        print(json.dumps([at_start, loaded, "pymongo" in sys.modules, "bson" in sys.modules]))
        """
    )
    at_start, loaded, pymongo_after, bson_after = json.loads(out)
    assert at_start == [], "imported before the first use"
    assert loaded == {"n": 1}
    assert pymongo_after and bson_after


# Each thread's first use of the driver, at the same moment, in a fresh process.
FIRST_USES = """
import json, threading, traceback

import django
from django.conf import settings
settings.configure(
    SECRET_KEY="x" * 50,
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth",
                    "django.contrib.sessions", "mongo_sessions"],
    SESSION_ENGINE="mongo_sessions.session",
    {connection},
    MONGO_SESSIONS_COLLECTION={collection!r},
    MONGO_SESSIONS_AUTO_INDEX=False,
)
django.setup()
import mongo_sessions
from mongo_sessions import driver
from mongo_sessions.session import SessionStore

def save_and_load():
    store = SessionStore()
    store["n"] = 1
    store.save()
    assert SessionStore(store.session_key).load() == {{"n": 1}}

uses = [
    lambda: driver.uri_parser.parse_uri,
    lambda: driver.database.Database,
    lambda: driver.errors.PyMongoError,
    lambda: driver.codec_options.CodecOptions,
    save_and_load,
    mongo_sessions.describe_connection,
    lambda: mongo_sessions.stored_session("a" * 32),
    mongo_sessions.ping,
]
barrier = threading.Barrier(len(uses))
errors = []

def run(use):
    barrier.wait()
    try:
        use()
    except BaseException:
        errors.append(traceback.format_exc(limit=3))

threads = [threading.Thread(target=run, args=(use,), daemon=True) for use in uses]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join(30)
errors += [f"hung: {{thread.name}}" for thread in threads if thread.is_alive()]
print(json.dumps(errors))
"""


# A site's own module holding its client, which imports a pymongo submodule first.
USER_CLIENT_MODULE = """
from pymongo.synchronous.collection import Collection  # a submodule first
import pymongo

client = pymongo.MongoClient({url!r}, connect=False)
"""


@pytest.mark.parametrize("attempt", range(3))
@pytest.mark.parametrize("style", ["url", "client-path"])
def test_first_use_from_many_threads_at_once(
    settings: Any, tmp_path: Path, style: str, attempt: int
) -> None:
    """The first requests of a threaded worker import the driver together: each one works.

    pymongo's modules import each other in a circle; imported from two threads
    at once they deadlock or are seen half-imported (``_DeadlockError``, a
    ``KeyError: 'pymongo'`` reported as a bad URL): one thread imports the driver
    while the others wait (mongo_sessions/driver.py), also before importing the
    module a ``MONGO_CLIENT`` path names.
    """
    url, collection = settings.MONGO_SESSIONS_URL, settings.MONGO_SESSIONS_COLLECTION
    env = None
    connection = f"MONGO_SESSIONS_URL={url!r}"
    if style == "client-path":
        (tmp_path / "site_client.py").write_text(USER_CLIENT_MODULE.format(url=url))
        env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO_ROOT)])}
        connection = f"MONGO_CLIENT='site_client.client', MONGO_DB_NAME={TEST_DB!r}"
    code = FIRST_USES.format(connection=connection, collection=collection)
    assert json.loads(run_python(code, env=env)) == []


@pytest.mark.no_mongo
def test_driver_names_its_modules_and_keeps_them() -> None:
    """Each name is its module, kept in the globals: later accesses skip __getattr__."""
    import pymongo.errors

    from mongo_sessions import driver

    assert driver.errors is pymongo.errors
    assert vars(driver)["errors"] is pymongo.errors
    assert set(driver.__all__) <= set(dir(driver))
    with pytest.raises(AttributeError, match="no_such_module"):
        driver.no_such_module  # noqa: B018


def _imports_of(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, name) of every import in ``path``; name is None for ``import m``."""
    found: list[tuple[int, str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found += [(node.lineno, node.module, alias.name) for alias in node.names]
    return found


def _attributes_of_package(path: Path) -> list[tuple[int, str]]:
    """(line, name) of every ``mongo_sessions.<name>`` in ``path``."""
    return [
        (node.lineno, node.attr)
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "mongo_sessions"
    ]


@pytest.mark.no_mongo
def test_the_demo_uses_only_the_public_api() -> None:
    sources = sorted(DEMO_DIR.rglob("*.py"))
    assert len(sources) > 5
    private: list[str] = []
    for path in sources:
        where = path.relative_to(REPO_ROOT)
        for line, module, name in _imports_of(path):
            if (
                module == "mongo_sessions"
                and name is not None
                and name not in mongo_sessions.__all__
            ):
                private.append(f"{where}:{line}: from mongo_sessions import {name}")
            elif module.startswith("mongo_sessions.") and module not in PUBLIC_MODULES:
                private.append(f"{where}:{line}: {module}")
        for line, attr in _attributes_of_package(path):
            if attr not in mongo_sessions.__all__:
                private.append(f"{where}:{line}: mongo_sessions.{attr}")
    assert private == []


LOAD_TEST_ENVIRONMENT = {
    "DEMO_SESSION_ENGINE": "cache",
    "DEMO_SESSION_SAVE_EVERY_REQUEST": "1",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
    "DEMO_FAST_PASSWORD_HASHER": "1",
    "MONGO_SESSIONS_URL": "mongodb://db.example:27017/shop",
}


@pytest.mark.no_mongo
def test_demo_settings_hold_nothing_for_the_load_tests() -> None:
    """The settings an adopter copies ignore the load tests' switches, and import with *."""
    out = run_python(
        """
        import json
        namespace = {}
        exec("from demo.settings import *", namespace)
        print(json.dumps({
            "engine": namespace["SESSION_ENGINE"],
            "save_every_request": namespace.get("SESSION_SAVE_EVERY_REQUEST"),
            "caches": "CACHES" in namespace,
            "database": namespace["DATABASES"]["default"]["ENGINE"],
            "hashers": "PASSWORD_HASHERS" in namespace,
            "url": namespace["MONGO_SESSIONS_URL"],
            "names": sorted(n for n in namespace if n.startswith(("DEMO_SESSION", "DEMO_FAST"))),
        }))
        """,
        env=LOAD_TEST_ENVIRONMENT,
        cwd=REPO_ROOT / "example_project",
    )
    assert json.loads(out) == {
        "engine": "mongo_sessions.session",
        "save_every_request": None,
        "caches": False,
        "database": "django.db.backends.sqlite3",
        "hashers": False,
        "url": "mongodb://db.example:27017/shop",
        "names": [],
    }
