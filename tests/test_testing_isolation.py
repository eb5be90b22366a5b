"""mongo_sessions.testing isolates adopters' tests: each test gets an empty sessions collection.

Django's ``TestCase`` (and pytest-django's ``django_db``) roll back the SQL
database only. A small adopter project, written to a temporary folder, logs a
user in from two tests; SQLite gives the re-created user the same id, so the
second test sees the first test's session in ``user_sessions()`` unless the
sessions are isolated. Each project runs in a process of its own, through
pytest-django and through Django's own test runner, once without and once with
the helpers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pymongo
import pytest

from mongo_sessions.testing import empty_sessions_collection, isolated_sessions_collection
from tests.faults import FailCommand, own_app_name
from tests.servers import free_port
from tests.support import TEST_DB

REPO_ROOT = Path(__file__).resolve().parent.parent

SETTINGS = """
SECRET_KEY = "adopter-tests-only"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "mongo_sessions",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
SESSION_ENGINE = "mongo_sessions.session"
MONGO_SESSIONS_URL = os.environ["ADOPTER_MONGO_URL"]
MONGO_SESSIONS_COLLECTION = os.environ["ADOPTER_COLLECTION"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ROOT_URLCONF = "adopter_settings"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
urlpatterns = []
"""

# Two tests, each creating user "alice" (id 1 again after the rollback) and
# logging her in: she must have exactly one session in each.
LOGIN_ONCE = """
def login_once(client):
    user = User.objects.create_user("alice", password="secret")
    assert user.pk == 1  # the rollback made SQLite reuse the id
    assert client.login(username="alice", password="secret")
    return len(mongo_sessions.user_sessions(user))
"""

PYTEST_MODULE = """
import pytest
from django.contrib.auth.models import User

import mongo_sessions

pytestmark = [pytest.mark.django_db{marks}]
{login_once}

def test_first(client):
    assert login_once(client) == 1


def test_second(client):
    assert login_once(client) == 1
"""

TESTCASE_MODULE = """
from django.contrib.auth.models import User
from django.test import TestCase

import mongo_sessions
{imports}
{login_once}

class LoginTests({bases}):
    def test_first(self):
        self.assertEqual(login_once(self.client), 1)

    def test_second(self):
        self.assertEqual(login_once(self.client), 1)
"""


def write_project(root: Path, module: str) -> None:
    (root / "adopter_settings.py").write_text("import os\n" + SETTINGS)
    (root / "test_adopter.py").write_text(module)
    # pytest's settings of this project, not the repository's pyproject.toml.
    (root / "pytest.ini").write_text("[pytest]\nDJANGO_SETTINGS_MODULE = adopter_settings\n")
    (root / "conftest.py").write_text('pytest_plugins = ["mongo_sessions.testing"]\n')


def run(root: Path, command: list[str], mongo_url: str, collection: str) -> Any:
    env = {
        **os.environ,
        "ADOPTER_MONGO_URL": f"{mongo_url.rstrip('/')}/{TEST_DB}",
        "ADOPTER_COLLECTION": collection,
        # The project, and the mongo_sessions of this checkout (not an installed one).
        "PYTHONPATH": os.pathsep.join([str(root), str(REPO_ROOT)]),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, *command],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def adopter(
    tmp_path: Path, mongo_url: str, mongo_client: pymongo.MongoClient[dict[str, Any]]
) -> Any:
    """Write and run an adopter project; its collections are dropped after the test."""
    collection = f"adopter_{uuid.uuid4().hex[:10]}"

    def run_project(module: str, command: list[str]) -> Any:
        write_project(tmp_path, module)
        return run(tmp_path, command, mongo_url, collection)

    run_project.collection = collection  # type: ignore[attr-defined]
    yield run_project
    database = mongo_client[TEST_DB]
    for name in database.list_collection_names():
        if name.startswith(collection):
            database.drop_collection(name)


PYTEST = ["-m", "pytest", "-p", "no:cacheprovider", "-q", "test_adopter.py"]
DJANGO_RUNNER = ["-m", "django", "test", "test_adopter", "--settings", "adopter_settings"]


def test_without_isolation_sessions_leak_into_the_next_pytest_django_test(adopter: Any) -> None:
    result = adopter(PYTEST_MODULE.format(marks="", login_once=LOGIN_ONCE), PYTEST)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 1 passed" in result.stdout
    assert "test_second" in result.stdout and "assert 2 == 1" in result.stdout


def test_isolated_sessions_fixture_gives_each_pytest_django_test_an_empty_collection(
    adopter: Any, mongo_client: pymongo.MongoClient[dict[str, Any]]
) -> None:
    marks = ', pytest.mark.usefixtures("isolated_sessions")'
    result = adopter(PYTEST_MODULE.format(marks=marks, login_once=LOGIN_ONCE), PYTEST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    # Each test's collection was dropped; the configured one was never written.
    names = mongo_client[TEST_DB].list_collection_names()
    assert [name for name in names if name.startswith(adopter.collection)] == []


def test_without_isolation_sessions_leak_into_the_next_django_testcase_test(
    adopter: Any,
) -> None:
    module = TESTCASE_MODULE.format(bases="TestCase", imports="", login_once=LOGIN_ONCE)
    result = adopter(module, DJANGO_RUNNER)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED (failures=1)" in result.stderr
    assert "AssertionError: 2 != 1" in result.stderr


def test_mixin_gives_each_django_testcase_test_an_empty_collection(
    adopter: Any, mongo_client: pymongo.MongoClient[dict[str, Any]]
) -> None:
    module = TESTCASE_MODULE.format(
        bases="IsolatedSessionsMixin, TestCase",
        imports="from mongo_sessions.testing import IsolatedSessionsMixin",
        login_once=LOGIN_ONCE,
    )
    result = adopter(module, DJANGO_RUNNER)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Ran 2 tests" in result.stderr and "OK" in result.stderr
    names = mongo_client[TEST_DB].list_collection_names()
    assert [name for name in names if name.startswith(adopter.collection)] == []


def test_the_collection_is_new_empty_and_dropped(
    settings: Any, mongo_client: pymongo.MongoClient[dict[str, Any]]
) -> None:
    from mongo_sessions.session import SessionStore

    configured = settings.MONGO_SESSIONS_COLLECTION
    outside = SessionStore()
    outside.create()
    with isolated_sessions_collection() as name:
        assert name.startswith(f"{configured}_test_")
        assert not SessionStore().exists(outside.session_key or "")
        inside = SessionStore()
        inside.create()
        assert name in mongo_client[TEST_DB].list_collection_names()
    assert name not in mongo_client[TEST_DB].list_collection_names()
    assert configured == settings.MONGO_SESSIONS_COLLECTION
    assert SessionStore().exists(outside.session_key or "")
    assert not SessionStore().exists(inside.session_key or "")


def test_emptying_deletes_every_session_of_the_current_collection_only(
    sessions_collection: Any,
) -> None:
    from mongo_sessions.session import SessionStore

    outside = SessionStore()
    outside.create()
    with isolated_sessions_collection():
        for _ in range(3):
            SessionStore().create()
        assert empty_sessions_collection() == 3
        assert empty_sessions_collection() == 0
    assert sessions_collection.count_documents({}) == 1
    assert SessionStore().exists(outside.session_key or "")


def test_an_unreachable_server_at_teardown_is_logged_not_raised(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.MONGO_SESSIONS_URL = f"mongodb://127.0.0.1:{free_port()}/sessions"  # nothing there
    settings.MONGO_SESSIONS_TIMEOUT = 0.5
    with isolated_sessions_collection() as name:
        pass
    assert f"test collection {name} was not dropped" in caplog.text


def test_the_drop_waits_for_an_index_creation_in_progress(
    settings: Any, mongo_client: pymongo.MongoClient[dict[str, Any]]
) -> None:
    """An index creation that ended after the drop would create the collection again."""
    from mongo_sessions import connection
    from mongo_sessions.session import SessionStore

    settings.MONGO_SESSIONS_AUTO_INDEX = True
    failpoint = FailCommand(mongo_client, own_app_name(settings, "isolation"))
    reason = failpoint.refusal()
    if reason is not None:
        pytest.skip(reason)
    try:
        with isolated_sessions_collection() as name:
            # The collection exists before the first use, so that use starts
            # createIndexes at once; the server holds it 1.5 s.
            mongo_client[TEST_DB].create_collection(name)
            failpoint.arm(["createIndexes"], blockConnection=True, blockTimeMS=1500)
            SessionStore().create()
            # Until the attempt has found the collection it sends no createIndexes.
            auto_index = connection._state.auto_index
            deadline = time.monotonic() + 10
            while auto_index.attempts == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert auto_index.attempts == 1
        time.sleep(2.5)  # past the hold: a createIndexes sent before the drop has run by now
        assert name not in mongo_client[TEST_DB].list_collection_names()
    finally:
        failpoint.off()
