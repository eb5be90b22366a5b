"""Take the README's screenshot of the demo: the cart and "My sessions" pages.

    python example_project/screenshot.py [--out docs/demo-screenshot.png] [--url URL]

Without ``--url`` it runs ``manage.py rundemo`` itself on a free loopback port
with a temporary data folder (an embedded SecantusDB unless MONGO_SESSIONS_URL
is set) and stops it afterwards. It drives headless Chromium from Debian's
``chromium`` package through Playwright (never a downloaded browser): one
"laptop" logs in with "remember me" and fills the cart, one "phone" logs in
too, so that the sessions page lists two devices. The two page shots are laid
side by side in one PNG.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

PROJECT_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(PROJECT_DIR))  # the demo package (demo.harness), as manage.py does

from demo.harness import CHROMIUM, CHROMIUM_ARGS, demo_server  # noqa: E402

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

REPO_ROOT = PROJECT_DIR.parent
PAGE_SIZE: ViewportSize = {"width": 760, "height": 500}


@contextlib.contextmanager
def running_demo() -> Iterator[str]:
    """Start ``rundemo`` in a temporary folder; yield its base URL; stop it by pid."""
    with tempfile.TemporaryDirectory(prefix="demo-screenshot-") as tmp:
        demo = demo_server(
            data_dir=Path(tmp) / "data",
            log_path=Path(tmp) / "rundemo.log",
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "demo.settings"},
        )
        with demo:
            yield demo.url


def take(base: str, out: Path, username: str, password: str) -> None:
    from playwright.sync_api import Page, sync_playwright

    def log_in(page: Page, remember: bool) -> None:
        page.goto(f"{base}/login/")
        page.fill("#username", username)
        page.fill("#password", password)
        if remember:
            page.check("#remember")
        page.click("button[type=submit]:has-text('Log in')")
        page.wait_for_url(f"{base}/")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            phone = browser.new_context(viewport={"width": 390, "height": 700})
            log_in(phone.new_page(), remember=False)

            laptop = browser.new_context(viewport=PAGE_SIZE, device_scale_factor=1)
            page = laptop.new_page()
            page.goto(f"{base}/cart/")
            for item in ("apple", "apple", "coffee", "bread"):
                page.click(f"tr[data-item={item}] button[name=add]")
                page.wait_for_url(f"{base}/cart/")
            log_in(page, remember=True)
            page.goto(f"{base}/cart/")
            cart_png = page.screenshot()
            page.goto(f"{base}/account/sessions/")
            sessions_png = page.screenshot()

            def img(png: bytes) -> str:
                return "data:image/png;base64," + base64.b64encode(png).decode()

            board = browser.new_page(viewport={"width": 2 * PAGE_SIZE["width"] + 72, "height": 400})
            board.set_content(
                f"""<!doctype html><html><body style="margin:0;background:#d9e0e5;
                font:15px system-ui,sans-serif;color:#1d2327">
                <div style="display:flex;gap:24px;padding:24px">
                  <figure style="margin:0"><figcaption style="margin-bottom:8px">
                    <b>/cart/</b> &mdash; the cart lives in the session</figcaption>
                    <img style="display:block;border-radius:8px;box-shadow:0 2px 10px #0003"
                         src="{img(cart_png)}"></figure>
                  <figure style="margin:0"><figcaption style="margin-bottom:8px">
                    <b>/account/sessions/</b> &mdash; every signed-in device, from MongoDB
                    </figcaption>
                    <img style="display:block;border-radius:8px;box-shadow:0 2px 10px #0003"
                         src="{img(sessions_png)}"></figure>
                </div></body></html>"""
            )
            out.parent.mkdir(parents=True, exist_ok=True)
            board.screenshot(path=str(out), full_page=True)
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "demo-screenshot.png")
    parser.add_argument("--url", help="base URL of a running demo (default: start one)")
    parser.add_argument("--username", default=os.environ.get("DEMO_USERNAME", "demo"))
    parser.add_argument("--password", default=os.environ.get("DEMO_PASSWORD", "demo-password"))
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} not found: apt-get install chromium", file=sys.stderr)
        return 2
    if args.url:
        take(args.url.rstrip("/"), args.out, args.username, args.password)
    else:
        with running_demo() as base:
            take(base, args.out, args.username, args.password)
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
