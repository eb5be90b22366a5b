"""Constants and markers shared by the test modules (never imported from conftest.py)."""

from __future__ import annotations

import os

import django
import pytest

# Set to run the suite against a real mongod instead of the SecantusDB stand-in.
TEST_URL = os.environ.get("MONGO_SESSIONS_TEST_URL")
# The database the package's collections live in during the tests.
TEST_DB = "mongo_sessions_tests"
# SessionBase has its async API (aget, aset, acycle_key...) from Django 5.1 on.
requires_async_api = pytest.mark.skipif(
    django.VERSION < (5, 1), reason="Django < 5.1 has no async session API"
)
