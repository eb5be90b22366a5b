#!/usr/bin/env python
"""Command-line entry point of the django-mongo-sessions demo site.

Run it from anywhere, for instance from the repository root::

    python example_project/manage.py rundemo
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent


def _setup_path() -> None:
    # The ``demo`` package lives next to this file: make it importable whatever
    # the current directory is; demo.paths does the rest (the checkout's package).
    if str(PROJECT_DIR) not in sys.path:
        sys.path.insert(0, str(PROJECT_DIR))
    from demo.paths import setup_path

    setup_path()


def main() -> None:
    _setup_path()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
