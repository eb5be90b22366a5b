"""What every session operation does and no longer does (issue 10, item 2).

Settings are read from Django once and kept until ``setting_changed`` names
them; the time bound is a plain context manager, not a generator; each
operation reads the clock once. What the operations store and raise is proven
by the rest of the suite, in both formats.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.sessions.backends.base import SessionBase
from django.test import override_settings

from mongo_sessions import session as session_module
from mongo_sessions.conf import conf
from mongo_sessions.operation import mongo_operation
from mongo_sessions.session import SessionStore


class CountingSettings:
    """Django's settings object, counting the names read from it."""

    def __init__(self, wrapped: Any) -> None:
        object.__setattr__(self, "_wrapped", wrapped)
        object.__setattr__(self, "reads", Counter())

    def __getattr__(self, name: str) -> Any:
        self.reads[name] += 1
        return getattr(self._wrapped, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._wrapped, name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._wrapped, name)


@pytest.fixture(params=["signed", "document"])
def each_format(request: pytest.FixtureRequest, settings: Any) -> str:
    settings.MONGO_SESSIONS_FORMAT = request.param
    return str(request.param)


def cycle(key: str) -> None:
    session = SessionStore(key)
    session["visits"] = session.get("visits", 0) + 1
    session.save()


def test_requests_read_no_setting_of_the_package_from_django(each_format: str) -> None:
    store = SessionStore()
    store["visits"] = 0
    store.save()
    cycle(store.session_key)  # the first use reads and keeps them
    original = django_settings._wrapped
    counting = CountingSettings(original)
    # Setting _wrapped also empties the lazy object's own cache, as override_settings does.
    # Put back by hand: monkeypatch could undo it after the settings fixture's own undo.
    django_settings._wrapped = counting
    try:
        for _ in range(5):
            cycle(store.session_key)
            SessionStore(store.session_key).exists(store.session_key)
    finally:
        django_settings._wrapped = original
    package_reads = {name: n for name, n in counting.reads.items() if name.startswith("MONGO_")}
    assert package_reads == {}
    # Django's own settings that every operation needs are kept as well: a cycle
    # reads nothing from Django's settings (SESSION_SERIALIZER for each store,
    # SESSION_COOKIE_AGE for each save, SECRET_KEY for each signature).
    assert dict(counting.reads) == {}
    assert SessionStore(store.session_key)["visits"] == 6


def test_a_store_starts_as_djangos_does(settings: Any) -> None:
    """SessionStore sets SessionBase.__init__'s attributes itself (the serializer
    imported once per SESSION_SERIALIZER): Django's sets nothing more."""
    from django.contrib.sessions.backends.base import SessionBase
    from django.core.signing import JSONSerializer

    theirs, ours = vars(SessionBase("a" * 32)), vars(SessionStore("a" * 32))
    assert set(theirs) <= set(ours)
    for name in set(theirs) - {"_SessionBase__session_key"}:
        assert ours[name] == theirs[name], name
    assert ours["_SessionBase__session_key"] == "a" * 32
    settings.SESSION_SERIALIZER = "tests.test_formats.SortedJSONSerializer"
    assert SessionStore().serializer is not JSONSerializer
    assert SessionStore().serializer.__name__ == "SortedJSONSerializer"


class AuditMixin(SessionBase):
    """A base with a cooperative __init__, put after SessionStore in a subclass's bases."""

    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        self.audited = True


def test_a_base_after_the_store_still_runs_its_init(sessions_collection: Any) -> None:
    class AuditedStore(SessionStore, AuditMixin):
        pass

    store = AuditedStore()
    assert store.audited
    store["n"] = 1
    store.save()
    loaded = AuditedStore(store.session_key)
    assert loaded.audited and loaded.load() == {"n": 1}


def test_a_changed_setting_is_read_again(settings: Any) -> None:
    assert conf.MONGO_SESSIONS_TIMEOUT == 5.0
    settings.MONGO_SESSIONS_TIMEOUT = 2.5
    assert conf.MONGO_SESSIONS_TIMEOUT == 2.5
    # MONGO_SESSIONS_TTL defaults to SESSION_COOKIE_AGE: it follows that one too.
    with override_settings(SESSION_COOKIE_AGE=1234):
        assert conf.MONGO_SESSIONS_TTL == 1234
    assert conf.MONGO_SESSIONS_TTL == django_settings.SESSION_COOKIE_AGE
    with override_settings(MONGO_SESSIONS_TTL=60):
        store = SessionStore()
        store.save()
        assert store.get_expiry_age() == django_settings.SESSION_COOKIE_AGE  # the cookie's
        assert conf.MONGO_SESSIONS_TTL == 60
    assert conf.MONGO_SESSIONS_TTL == django_settings.SESSION_COOKIE_AGE


def test_the_time_bound_is_not_a_generator() -> None:
    bound = mongo_operation("load")
    assert not isinstance(bound, contextlib._GeneratorContextManager)
    assert hasattr(type(bound), "__enter__") and hasattr(type(bound), "__exit__")


@pytest.fixture
def clock_reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count the package's reads of the clock during session operations."""
    reads: Counter[str] = Counter()
    original = session_module.utc_now

    def counted() -> Any:
        reads["utc_now"] += 1
        return original()

    monkeypatch.setattr(session_module, "utc_now", counted)
    return reads


def test_each_operation_reads_the_clock_once(
    each_format: str, clock_reads: Counter[str], sessions_collection: Any
) -> None:
    store = SessionStore()
    store["a"] = 1
    store.save()  # create: the expiry and created_at come from one reading
    assert clock_reads["utc_now"] == 1
    document = sessions_collection.find_one({"_id": store.session_key})
    lifetime = timedelta(seconds=django_settings.SESSION_COOKIE_AGE)
    assert document["expire_date"] - document["created_at"] == lifetime
    clock_reads.clear()
    loaded = SessionStore(store.session_key)
    loaded["a"] = 2
    loaded.save()  # a load, then an update
    assert clock_reads["utc_now"] == 2


def test_no_signal_work_without_receivers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Creates and deletes build no signal arguments (a hash of the key) that nobody receives."""
    from mongo_sessions import signals

    hashed: list[str] = []
    monkeypatch.setattr(signals, "hash_session_key", lambda key: hashed.append(key) or "h")
    monkeypatch.setattr(signals.session_created, "receivers", [])
    monkeypatch.setattr(signals.session_ended, "receivers", [])
    store = SessionStore()
    store["a"] = 1
    store.save()
    store.delete()
    assert hashed == []
    received: list[Any] = []

    def receiver(**kwargs: Any) -> None:
        received.append(kwargs["key_hash"])

    monkeypatch.undo()
    signals.session_created.connect(receiver, dispatch_uid="test_hot_path")
    try:
        SessionStore().save()
    finally:
        signals.session_created.disconnect(dispatch_uid="test_hot_path")
    assert len(received) == 1
