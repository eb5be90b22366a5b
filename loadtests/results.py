"""Where a run's files go, and what it ran on (machine, commit, versions)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

LOADTESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = LOADTESTS_DIR.parent
RESULTS_ROOT = LOADTESTS_DIR / "results"


def new_results_folder(output: str | None, suffix: str = "") -> Path:
    """The folder given, or loadtests/results/<timestamp><suffix>/ (never reused); created."""
    if output:
        folder = Path(output)
    else:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        folder = RESULTS_ROOT / f"{stamp}{suffix}"
        n = 2
        while folder.exists():
            folder = RESULTS_ROOT / f"{stamp}{suffix}-{n}"
            n += 1
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO_ROOT), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip()


def git_revision() -> str:
    """The checkout's short commit, with "+local changes" when tracked files changed."""
    revision = _git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return f"{revision}{'+local changes' if dirty else ''}"


def machine() -> str:
    """Cores, CPU model and Python version of this machine."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({cpu}), Python {sys.version.split()[0]}"


def versions(*distributions: str) -> str:
    """ "Django 5.2.19, pymongo 4.20.1, ..." for the distributions installed here."""
    found = []
    for name in distributions:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found.append(f"{name} {importlib.metadata.version(name)}")
    return ", ".join(found)
