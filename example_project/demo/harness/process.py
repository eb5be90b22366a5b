"""One child process: started, probed until ready, and stopped by its own PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from .base import (
    START_TIMEOUT,
    STOP_TIMEOUT,
    HarnessError,
    Interrupted,
    wait_until,
)

# --- one child process -----------------------------------------------------------------


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: have the child get SIGTERM when its parent dies, even by SIGKILL."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass(eq=False)
class ChildProcess:
    """One process started by this one, in a session of its own (Ctrl-C reaches only us).

    ``ready`` is the probe :meth:`start` waits for (None: do not wait); ``url``
    and ``port`` say where a server answers. ``env`` is the child's whole
    environment (None: this process's). ``user`` runs it as that system user
    (PostgreSQL refuses to run as root). A ChildProcess can be started again after
    it stopped or was killed, on the same port and data.
    """

    name: str
    command: list[str]
    log_path: Path | None  # None: the child writes to our stdout and stderr
    ready: Callable[[], bool] | None = None
    url: str = ""
    port: int = 0
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    stop_signal: int = signal.SIGTERM
    start_timeout: float = START_TIMEOUT
    stop_timeout: float = STOP_TIMEOUT
    die_with_parent: bool = False
    user: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self.process is not None and self.process.poll() is None

    def start(self, stop: threading.Event | None = None) -> ChildProcess:
        """Start the process and wait (at most ``start_timeout`` s) until ``ready()`` is true.

        Raises HarnessError (with the log's last lines) when it exits or does not
        answer in time, after stopping it; Interrupted when ``stop`` is set first.
        """
        self.spawn()
        self.wait_ready(stop)
        return self

    def spawn(self) -> ChildProcess:
        """Start the process without waiting for it (its pid is known from now on)."""
        if self.running():
            raise HarnessError(f"{self.name} (pid {self.pid}) is already running")
        with contextlib.ExitStack() as files:
            log = None
            if self.log_path is not None:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                log = files.enter_context(self.log_path.open("ab"))
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=None if self.env is None else dict(self.env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=None if log is None else subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if self.die_with_parent else None,
                user=self.user,
            )
        return self

    def wait_ready(self, stop: threading.Event | None = None) -> None:
        """Wait until ``ready()`` is true, as :meth:`start` does; stop the process on failure."""
        assert self.process is not None, f"{self.name} was never started"
        if self.ready is None:
            return
        try:
            wait_until(self.name, self.ready, self.start_timeout, process=self.process, stop=stop)
        except HarnessError as e:
            self.stop()
            if isinstance(e, Interrupted):
                raise
            tail = f"; last lines of {self.log_path}:\n{self.log_tail()}" if self.log_path else ""
            raise HarnessError(f"{e}{tail}") from None

    def wait(self, timeout: float) -> int:
        """Wait at most ``timeout`` s for the process to exit by itself; return its status.

        Raises HarnessError after stopping it when it is still running then.
        """
        assert self.process is not None, f"{self.name} was never started"
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise HarnessError(f"{self.name} did not finish within {timeout:g} s") from None

    def stop(self, sig: int | None = None) -> int | None:
        """Stop the process by its PID: ``sig`` (default its stop signal), then SIGKILL.

        Waits ``stop_timeout`` s after the first signal and STOP_TIMEOUT s after
        SIGKILL; returns the exit status (None if it was never started). Raises
        HarnessError if it outlives SIGKILL.
        """
        if self.process is None:
            return None
        first = self.stop_signal if sig is None else sig
        for signum, bound in ((first, self.stop_timeout), (signal.SIGKILL, STOP_TIMEOUT)):
            if self.process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signum)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=bound)
        if self.process.poll() is None:
            raise HarnessError(f"{self.name} (pid {self.process.pid}) outlived SIGKILL")
        return self.process.returncode

    def kill(self) -> None:
        """Stop the process abruptly (SIGKILL), as a crash would."""
        self.stop(signal.SIGKILL)

    def log_text(self) -> str:
        """Everything the process wrote so far."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the log."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __enter__(self) -> ChildProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
