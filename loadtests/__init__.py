"""Load tests and per-operation benchmark of django-mongo-sessions.

``python -m loadtests run``: the demo site under Locust, per session engine.
``python -m loadtests ops``: MongoDB commands and client CPU per session operation,
next to Django's cache and database engines.

The demo's package (``demo.harness`` starts every server, ``demo.catalogue`` has
the prices the Locust users check) is imported from this checkout's
example_project/, as its manage.py does.
"""

from __future__ import annotations

import sys
from pathlib import Path

EXAMPLE_PROJECT = str(Path(__file__).resolve().parent.parent / "example_project")
if EXAMPLE_PROJECT not in sys.path:
    sys.path.append(EXAMPLE_PROJECT)
