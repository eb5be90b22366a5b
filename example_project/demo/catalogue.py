"""What the demo shop sells, with unit prices.

Plain data without Django, so that the load test's Locust users (which check
every cart total they are shown) read the same prices as the site's views.
"""

from __future__ import annotations

from decimal import Decimal

CATALOGUE: dict[str, Decimal] = {
    "apple": Decimal("0.50"),
    "bread": Decimal("2.25"),
    "coffee": Decimal("7.00"),
}
