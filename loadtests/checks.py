"""What the Locust users check in the demo's answers: each returns a problem, or None.

Every user knows what it wrote, so a check compares an answer with exactly
that: a lost or stale write is a failure, not a silent slowdown.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from demo.catalogue import CATALOGUE

Check = Callable[[Any], str | None]


def cart_payload(cart: dict[str, int]) -> dict[str, Any]:
    """The JSON the demo answers for ``cart``."""
    total = sum((CATALOGUE[item] * n for item, n in cart.items()), Decimal("0.00"))
    return {"cart": dict(cart), "total": f"{total:.2f}"}


def expect_equal(expected: Any) -> Check:
    def check(body: Any) -> str | None:
        if body != expected:
            return f"expected {expected}, got {body}"
        return None

    return check


def expect_cart(cart: dict[str, int]) -> Check:
    """The cart must show exactly what this user put in it (a lost write fails)."""
    expected = cart_payload(cart)

    def check(body: Any) -> str | None:
        if not isinstance(body, dict) or body.get("cart") != expected["cart"]:
            got = body.get("cart") if isinstance(body, dict) else body
            return f"stale or lost cart: expected {expected['cart']}, got {got}"
        if body.get("total") != expected["total"]:
            return f"wrong total: expected {expected['total']}, got {body.get('total')}"
        return None

    return check


def expect_visits(visits: int) -> Check:
    def check(body: Any) -> str | None:
        got = body.get("visits") if isinstance(body, dict) else body
        if got != visits:
            return f"stale or lost counter: expected visits={visits}, got {got}"
        return None

    return check


def expect_text(text: str) -> Check:
    def check(body: Any) -> str | None:
        return None if text in str(body) else f"the page does not say {text!r}"

    return check


def expect_user(user: str | None) -> Check:
    def check(body: Any) -> str | None:
        got = body.get("user", "<missing>") if isinstance(body, dict) else body
        if got != user:
            return f"expected user {user!r}, got {got!r}"
        return None

    return check


def snippet(response: Any) -> str:
    try:
        return repr((response.text or "")[:200])
    except Exception:  # a connection error has no body to decode
        return repr(getattr(response, "error", None))
