"""What importing each session engine costs a site, measured with ``python -X importtime``.

Each measurement is a fresh interpreter that configures Django for a typical
site (``contenttypes``, ``auth`` and ``sessions`` installed, ``django.http``
loaded, as it is once a site serves requests), then does what one engine
adds to that site:

* mongo_sessions: ``"mongo_sessions"`` in ``INSTALLED_APPS`` (its system checks
  are registered when the app is ready) and ``import mongo_sessions.session``
  (what ``SessionMiddleware`` imports for ``SESSION_ENGINE``), which import no
  pymongo: the package imports the driver on first use (``mongo_sessions.driver``);
* mongo_sessions_first_use: the same, then the driver modules that the first
  session operation imports (pymongo, with its async client, and bson), so
  that the report shows what the package costs a site once it serves a request;
* Django's cache engine on Redis: ``import django.contrib.sessions.backends.cache``
  and the Redis cache backend, which imports redis-py when it is built.

The package is byte-compiled first, as an installed package is. The cost of
an engine is the sum of ``-X importtime``'s cumulative times of
the modules imported at the top level after ``django.setup()`` began, minus the
same sum for the site alone, each the median over fresh interpreters taking
turns. The module where a cost comes from is listed with its own time.
"""

from __future__ import annotations

import compileall
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

MARK = "<<measured from here>>"

_SETUP = """
import sys
import django
from django.conf import settings
apps = ["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions"]
extra_apps = {extra_apps!r}
settings.configure(
    SECRET_KEY="x" * 50,
    INSTALLED_APPS=apps + extra_apps,
    DATABASES={{}},
    CACHES={{"default": {{
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:9/0",
    }}}},
)
print({mark!r}, file=sys.stderr, flush=True)
django.setup()
import django.http
{engine}
"""

#: What each engine adds to the site: (apps added to INSTALLED_APPS, code run after setup).
ENGINES: dict[str, tuple[list[str], str]] = {
    "site": ([], ""),
    "mongo_sessions": (["mongo_sessions"], "import mongo_sessions.session"),
    "mongo_sessions_first_use": (
        ["mongo_sessions"],
        "import mongo_sessions.session\n"
        "from mongo_sessions import driver\n"
        "driver.pymongo, driver.errors, driver.bson, driver.codec_options  # the first operation's",
    ),
    "cache": (
        [],
        "import django.contrib.sessions.backends.cache\n"
        "from django.core.cache import caches\n"
        "caches['default']._cache  # the Redis client: imports redis-py",
    ),
}
_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


@dataclass
class ImportCost:
    """An engine's import cost in ms (median), its spread, and its costliest modules."""

    engine: str
    median_ms: float
    runs_ms: list[float]
    top_modules: list[tuple[str, float]] = field(default_factory=list)


def _one(engine: str) -> tuple[float, dict[str, float]]:
    """One fresh interpreter: (top-level cumulative ms after the mark, module -> own ms)."""
    extra_apps, code = ENGINES[engine]
    script = _SETUP.format(extra_apps=extra_apps, mark=MARK, engine=code)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    after = done.stderr.split(MARK, 1)[1]
    total = 0
    own: dict[str, float] = {}
    for line in after.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        self_us, cumulative_us, indent, name = match.groups()
        own[name] = int(self_us) / 1000
        if len(indent) == 1:  # imported at the top level, not by another module
            total += int(cumulative_us)
    return total / 1000, own


def measure_imports(runs: int = 9) -> dict[str, ImportCost]:
    """Each engine's import cost beyond the site's, over ``runs`` interpreters per engine.

    The package is byte-compiled first, as pip does when it installs a package
    (Django and redis-py were compiled then): a checkout run with
    PYTHONDONTWRITEBYTECODE would otherwise compile its modules on every import.
    """
    import mongo_sessions

    compileall.compile_dir(Path(mongo_sessions.__file__).parent, quiet=1)
    totals: dict[str, list[float]] = {name: [] for name in ENGINES}
    owns: dict[str, list[dict[str, float]]] = {name: [] for name in ENGINES}
    for _ in range(runs):
        for name in ENGINES:  # taking turns, so that all see the same machine
            total, own = _one(name)
            totals[name].append(total)
            owns[name].append(own)
    site = statistics.median(totals["site"])
    site_modules = set().union(*(set(own) for own in owns["site"]))
    costs = {}
    for name in ENGINES:
        if name == "site":
            continue
        added = [t - site for t in totals[name]]
        modules: dict[str, list[float]] = {}
        for own in owns[name]:
            for module, ms in own.items():
                if module not in site_modules:
                    modules.setdefault(module, []).append(ms)
        top = sorted(
            ((module, statistics.median(values)) for module, values in modules.items()),
            key=lambda item: -item[1],
        )[:8]
        costs[name] = ImportCost(name, statistics.median(added), added, top)
    return costs


def main() -> int:
    for cost in measure_imports().values():
        spread = f"{min(cost.runs_ms):.1f}-{max(cost.runs_ms):.1f}"
        print(f"{cost.engine}: {cost.median_ms:.1f} ms ({spread})")
        for module, ms in cost.top_modules:
            print(f"    {ms:6.2f} ms  {module}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
