"""A real browser on the demo site: headless Chromium driven by Playwright.

Debian's ``chromium`` (/usr/bin/chromium) is used, never a browser that
Playwright downloads. The site runs with ``manage.py rundemo`` against the
suite's MongoDB-wire server.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pymongo
import pytest

from demo.harness import CHROMIUM, CHROMIUM_ARGS
from tests.http_client import Client
from tests.servers import PROJECT_DIR, REPO_ROOT, demo_env, rundemo, with_database

COLLECTION = "mongo_sessions"
THIRTY_DAYS = 30 * 24 * 3600

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"
    ),
]

DATABASE = "demo_browser"


@pytest.fixture(scope="module")
def demo_site(
    mongo_url: str, mongo_client: pymongo.MongoClient[dict[str, Any]], tmp_path_factory: Any
) -> Iterator[str]:
    mongo_client.drop_database(DATABASE)
    tmp = tmp_path_factory.mktemp("browser-demo")
    env = demo_env(MONGO_SESSIONS_URL=with_database(mongo_url, DATABASE))
    with rundemo(env, tmp / "data", tmp / "rundemo.log") as demo:
        yield demo.base


def _session_cookie(cookies: list[Any]) -> dict[str, Any] | None:
    return next((dict(c) for c in cookies if c["name"] == "sessionid"), None)


def test_login_cart_remember_me_logout_in_chromium(
    demo_site: str, mongo_client: pymongo.MongoClient[dict[str, Any]], tmp_path: Path
) -> None:
    """One visitor's visit in one Chromium, step by step.

    Over 60 lines on purpose: each step starts from what the previous one left
    (the cookie, the cart, the login), so the steps cannot be tests of their own.
    """
    from playwright.sync_api import expect, sync_playwright

    base = demo_site
    sessions = mongo_client[DATABASE][COLLECTION]
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            context.set_default_timeout(20_000)
            page = context.new_page()

            # Anonymous: the cart works before logging in.
            page.goto(f"{base}/cart/")
            expect(page.locator("#who")).to_have_text("Not signed in")
            page.click("tr[data-item=apple] button[name=add]")
            page.wait_for_url(f"{base}/cart/")
            expect(page.locator("#total")).to_have_text("0.50")
            anonymous = _session_cookie(context.cookies())
            assert anonymous is not None

            # Log in with "remember me".
            page.goto(f"{base}/login/")
            page.fill("#username", "demo")
            page.fill("#password", "demo-password")
            page.check("#remember")
            page.click("button[type=submit]:has-text('Log in')")
            page.wait_for_url(f"{base}/")
            expect(page.locator("#who")).to_have_text("demo")

            cookie = _session_cookie(context.cookies())
            assert cookie is not None
            assert cookie["value"] != anonymous["value"], "the key must change at login"
            assert cookie["httpOnly"] is True
            assert cookie["sameSite"] == "Lax"
            remaining = cookie["expires"] - time.time()
            assert abs(remaining - THIRTY_DAYS) < 300, f"cookie expires in {remaining} s"
            assert sessions.find_one({"_id": anonymous["value"]}) is None
            document = sessions.find_one({"_id": cookie["value"]})
            assert document is not None and document.get("user_id")
            stored = (document["expire_date"] - datetime.now(timezone.utc)).total_seconds()
            assert abs(stored - THIRTY_DAYS) < 300

            # The cart carried over the login; add more.
            page.goto(f"{base}/cart/")
            expect(page.locator("tr[data-item=apple] .count")).to_have_text("1")
            page.click("tr[data-item=apple] button[name=add]")
            page.wait_for_url(f"{base}/cart/")
            page.click("tr[data-item=coffee] button[name=add]")
            page.wait_for_url(f"{base}/cart/")
            expect(page.locator("#total")).to_have_text("8.00")

            # The sessions page marks this browser.
            page.goto(f"{base}/account/sessions/")
            expect(page.locator("tr.current strong")).to_have_text("(this device)")
            page.goto(f"{base}/session/")
            expect(page.locator("#style")).to_have_text("url")

            # Log out: the cookie goes, and so does the document.
            page.click("header button:has-text('Log out')")
            page.wait_for_url(f"{base}/login/")
            expect(page.locator("#who")).to_have_text("Not signed in")
            assert _session_cookie(context.cookies()) is None
            assert sessions.find_one({"_id": cookie["value"]}) is None

            # Replaying the old cookie shows an anonymous, empty session.
            context.add_cookies([cookie])  # type: ignore[list-item]
            page.goto(f"{base}/cart/")
            expect(page.locator("#who")).to_have_text("Not signed in")
            expect(page.locator("#total")).to_have_text("0.00")
            page.goto(f"{base}/account/sessions/")
            assert page.url.startswith(f"{base}/login/?next=")

            # Without "remember me" the cookie ends with the browser.
            page.goto(f"{base}/login/")
            page.fill("#username", "demo")
            page.fill("#password", "demo-password")
            page.click("button[type=submit]:has-text('Log in')")
            page.wait_for_url(f"{base}/")
            cookie = _session_cookie(context.cookies())
            assert cookie is not None and cookie["expires"] == -1
        finally:
            context.close()

    # Outside the browser too: the replayed key is not a session any more.
    assert Client(base, {"sessionid": document["_id"]}).get("/api/login/").json() == {"user": None}


def test_screenshot_script(demo_site: str, tmp_path: Path) -> None:
    out = tmp_path / "shot.png"
    result = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "screenshot.py"), "--url", demo_site, "--out", str(out)],
        cwd=REPO_ROOT,
        env=demo_env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    header = out.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(header[16:20], "big")
    assert width > 1000
