"""The demo container is built and run, not only written.

Runs ``.ci/container_check.sh``: it builds the image from the Dockerfile (with
docker where an engine answers, podman otherwise), runs it, checks over HTTP on
127.0.0.1 that a session persists across requests with its cookie (visits 1,
then 2), and removes the container and the image tag it made.

Skipped only when no engine can be had: no docker engine answers, podman is
not installed, and the script could not install it (it installs podman with
apt-get when running as root, as CI does on a fresh machine).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / ".ci" / "container_check.sh"
TIMEOUT = 1500  # seconds: a first run debootstraps a stand-in base image


def _docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _podman_available() -> bool:
    if shutil.which("podman"):
        return True
    # The script installs podman itself (apt-get) when it runs as root.
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get") is not None


@pytest.mark.slow
@pytest.mark.container
def test_container_session_persists() -> None:
    if not (_docker_engine_answers() or _podman_available()):
        pytest.skip(
            "no container engine: `docker info` fails, podman is not installed, "
            "and it cannot be installed here (not root, or no apt-get)"
        )
    done = subprocess.run(
        ["bash", str(SCRIPT)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    out = done.stdout
    print(out)  # shown by pytest -rA / -s, and with a failure
    tail = "\n".join(out.splitlines()[-80:])
    assert done.returncode == 0, f"container_check.sh exited {done.returncode}:\n{tail}"

    jar_visits = r'GET /api/counter/ \(jar cookie\) -> \{"visits": (\d+)\}'
    counts = [int(n) for n in re.findall(jar_visits, out)]
    assert counts[:2] == [1, 2], f"expected visits 1 then 2 with the cookie, got {counts}:\n{tail}"
    assert "OK: visits 1 then 2 with the sessionid cookie" in out, tail
    assert "== timings ==" in out, tail
