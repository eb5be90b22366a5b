"""The operations ``ops`` measures, as data, and how they are counted and timed.

An :class:`Operation` is a name and three functions of a :class:`Subject`
(one engine with the session it works on): ``prepare`` (untimed) makes the
argument of ``call`` (timed), and ``check`` says whether what ``call``
returned is right (on the counting pass, so that a broken engine cannot post
a fast time). Counting runs with the engines' hooks installed; timing runs
without them, in rounds of one call of every operation on every engine in a
shuffled order.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from .engines import Engine

#: The cart each session holds.
CART = {"apple": 2, "coffee": 1}
#: What each session holds: a user, as django.contrib.auth.login() leaves it, and a cart.
SESSION: dict[str, Any] = {
    "_auth_user_id": "42",
    "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
    "_auth_user_hash": "3f1c2a9b8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170f6e5d4c",
    "cart": CART,
    "visits": 1,
}


@dataclass
class Subject:
    """One engine under one operation: the session it works on, and spare ones."""

    engine: Engine
    key: str
    spare: list[str] = field(default_factory=list)  # for operations that use one up per call

    def store(self, key: str | None = None) -> Any:
        """A SessionStore of the engine for ``key`` (None: a new session)."""
        return self.engine.store_class(key)


def new_session(engine: Engine) -> str:
    """Save a session holding SESSION; return its key."""
    store = engine.store_class()
    store.update({**SESSION, "cart": dict(CART)})
    store.save()
    key = str(store.session_key)
    engine.created_keys.append(key)
    return key


def random_key() -> str:
    from django.contrib.sessions.backends.base import VALID_KEY_CHARS
    from django.utils.crypto import get_random_string

    return get_random_string(32, VALID_KEY_CHARS)


def _load_modify_save(subject: Subject, _: Any) -> int:
    session = subject.store(subject.key)
    session["visits"] = session.get("visits", 0) + 1
    session.save()
    return int(session["visits"])


def _loaded(subject: Subject) -> Any:
    session = subject.store(subject.key)
    session.get("cart")  # loaded, as it is when login() cycles it
    return session


def _cycle_key(subject: Subject, session: Any) -> str:
    session.cycle_key()
    subject.key = session.session_key
    subject.engine.created_keys.append(subject.key)
    return subject.key


def _delete(subject: Subject, key: str) -> str:
    subject.store(key).delete()
    return key


def _holds_cart(subject: Subject, key: Any) -> bool:
    return bool(subject.store(key).get("cart") == CART)


def _nothing(subject: Subject) -> None:
    return None


@dataclass(frozen=True)
class Operation:
    """A session operation: ``call(subject, prepare(subject))`` is what is timed."""

    name: str
    call: Callable[[Subject, Any], Any]
    check: Callable[[Subject, Any], bool] = lambda subject, value: True
    prepare: Callable[[Subject], Any] = _nothing
    spare_sessions: bool = False  # needs a session of its own per call, made up front


OPERATIONS: tuple[Operation, ...] = (
    Operation("create", lambda s, _: new_session(s.engine), check=_holds_cart),
    Operation("load", lambda s, _: s.store(s.key).get("cart"), check=lambda s, v: v == CART),
    Operation("load-modify-save", _load_modify_save),
    Operation("cycle_key", _cycle_key, check=_holds_cart, prepare=_loaded),
    Operation(
        "delete",
        _delete,
        check=lambda s, key: s.store(key).get("cart") is None,
        prepare=lambda s: s.spare.pop(),
        spare_sessions=True,
    ),
    Operation(
        "load unknown key",
        lambda s, key: s.store(key).get("cart"),
        check=lambda s, v: v is None,
        prepare=lambda s: random_key(),
    ),
)
#: The operation that is one request of a site: its cost is the headline figure.
FULL_CYCLE = "load-modify-save"


def subject(engine: Engine, operation: Operation, calls: int) -> Subject:
    """A session of ``engine`` to run ``operation`` on, with spares for ``calls`` calls."""
    spare = [new_session(engine) for _ in range(calls)] if operation.spare_sessions else []
    return Subject(engine, new_session(engine), spare)


@dataclass
class Measure:
    """One operation on one engine: its commands, and the client CPU and wall time per call."""

    commands: list[str]
    cpu_us: list[float]
    wall_us: list[float]

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_us)

    @property
    def wall_median(self) -> float:
        return statistics.median(self.wall_us)


def _call_into(operation: Operation, target: Subject, arg: Any, result: list[Any]) -> None:
    result.append(operation.call(target, arg))


def count_commands(engine: Engine, operation: Operation, calls: int) -> list[str]:
    """The commands of one call (the most common sequence over ``calls`` calls).

    Raises AssertionError when a call does not do what the operation should.
    """
    engine.counting_on()
    try:
        target = subject(engine, operation, calls + 1)
        operation.call(target, operation.prepare(target))  # first call after a rebuild: not counted
        seen: Counter[tuple[str, ...]] = Counter()
        for _ in range(calls):
            result: list[Any] = []
            call = partial(_call_into, operation, target, operation.prepare(target), result)
            commands = engine.count(call)
            if not operation.check(target, result[0]):
                raise AssertionError(f"{engine.label}: {operation.name} returned {result[0]!r}")
            seen[tuple(commands)] += 1
    finally:
        engine.counting_off()
    return list(seen.most_common(1)[0][0])


def time_rounds(
    engines: list[Engine], warmup: int, iterations: int, seed: int
) -> dict[tuple[str, str], tuple[list[float], list[float]]]:
    """Time every operation on every engine: (engine key, operation) -> (cpu, wall) in µs.

    Each round makes one call of every operation on every engine, in an order
    shuffled anew for each round, so that every engine meets the same machine
    conditions (other load, CPU frequency, caches) rather than one engine after
    the other. Client CPU is ``time.process_time_ns()``: the user and kernel
    time of the whole process, so work an engine does in another thread counts
    too. The first ``warmup`` rounds are not kept.
    """
    rng = random.Random(seed)
    pairs = [
        (operation, subject(engine, operation, warmup + iterations))
        for operation in OPERATIONS
        for engine in engines
    ]
    samples: dict[tuple[str, str], tuple[list[float], list[float]]] = {
        (target.engine.key, operation.name): ([], []) for operation, target in pairs
    }
    gc.collect()
    for i in range(warmup + iterations):
        if i and i % 100 == 0:
            print(f"  round {i} of {warmup + iterations}", flush=True)
        rng.shuffle(pairs)
        for operation, target in pairs:
            arg = operation.prepare(target)
            w0 = time.perf_counter_ns()
            c0 = time.process_time_ns()
            operation.call(target, arg)
            c1 = time.process_time_ns()
            w1 = time.perf_counter_ns()
            if i >= warmup:
                cpu, wall = samples[target.engine.key, operation.name]
                cpu.append((c1 - c0) / 1000)
                wall.append((w1 - w0) / 1000)
    return samples


def stored_bytes(engine: Engine) -> int:
    """The bytes one session of the benchmark takes in ``engine``'s store."""
    return engine.stored_bytes(new_session(engine))


def measure(
    engines: list[Engine], warmup: int, iterations: int, count_calls: int, seed: int
) -> dict[tuple[str, str], Measure]:
    """Count, then time, every operation on every engine: (engine key, operation) -> Measure."""
    results: dict[tuple[str, str], Measure] = {}
    # Counting first, with the hooks installed; then timing, without them.
    for engine in engines:
        engine.counting_off()
        for operation in OPERATIONS:
            commands = count_commands(engine, operation, count_calls)
            results[engine.key, operation.name] = Measure(commands, [], [])
    print(f"timing {warmup} + {iterations} rounds...", flush=True)
    samples = time_rounds(engines, warmup, iterations, seed)
    for key, (cpu, wall) in samples.items():
        results[key].cpu_us, results[key].wall_us = cpu, wall
    return results
