"""What the demo keeps in each visitor's session: a visit count, and a cart from its shop."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.sessions.backends.base import SessionBase

from demo.catalogue import CATALOGUE


def count_visit(session: SessionBase) -> int:
    """Count one more visit in ``session`` (a write on every visit); return the count."""
    visits = int(session.get("visits", 0)) + 1
    session["visits"] = visits
    return visits


class UnknownItem(ValueError):
    """Raised for an item the shop does not sell."""


def cart_of(session: SessionBase) -> dict[str, int]:
    """Return the cart kept in ``session``: item -> count, without unknown items."""
    cart = session.get("cart", {})
    return {item: int(n) for item, n in cart.items() if item in CATALOGUE and int(n) > 0}


def cart_total(cart: dict[str, int]) -> Decimal:
    """Return the price of ``cart``."""
    return sum((CATALOGUE[item] * n for item, n in cart.items()), Decimal("0.00"))


def change_cart(session: SessionBase, item: str, delta: int) -> dict[str, int]:
    """Add ``delta`` (+1 or -1) of ``item`` to the cart in ``session``; return the new cart.

    Raises ``UnknownItem`` when the shop does not sell ``item``.
    """
    if item not in CATALOGUE:
        raise UnknownItem(item)
    cart = cart_of(session)
    count = cart.get(item, 0) + delta
    if count > 0:
        cart[item] = count
    else:
        cart.pop(item, None)
    # Assign a new dict: the session notices assignments, not in-place changes.
    session["cart"] = cart
    return cart
