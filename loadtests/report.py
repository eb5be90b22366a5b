"""Read Locust's statistics, draw the engines side by side, and format the tables.

Each engine's run has Locust's own HTML report (requests/s, response times and
users over time); the one chart drawn here, ``comparison.png``, adds what no
single report has: the engines' throughput and p95 next to each other.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class EndpointStats:
    """One row of Locust's ``_stats.csv``: a request name, or "Aggregated"."""

    method: str
    name: str
    requests: int
    failures: int
    rps: float
    percentiles: dict[str, float | None] = field(default_factory=dict)
    max_ms: float | None = None

    def p(self, key: str) -> float | None:
        return self.percentiles.get(key)

    @property
    def fail_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def _number(value: str | None) -> float | None:
    if value is None or value.strip() in ("", "N/A"):
        return None
    try:
        return float(value)
    except ValueError:
        return None


PERCENTILE_COLUMNS = ("50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "100%")


def read_stats(csv_prefix: Path) -> list[EndpointStats]:
    """The rows of ``<prefix>_stats.csv``, Aggregated last."""
    path = csv_prefix.with_name(csv_prefix.name + "_stats.csv")
    rows: list[EndpointStats] = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            rows.append(
                EndpointStats(
                    method=row.get("Type", ""),
                    name=row["Name"],
                    requests=int(row["Request Count"]),
                    failures=int(row["Failure Count"]),
                    rps=float(row["Requests/s"]),
                    percentiles={k: _number(row.get(k)) for k in PERCENTILE_COLUMNS},
                    max_ms=_number(row.get("Max Response Time")),
                )
            )
    return rows


def read_failures(csv_prefix: Path) -> list[dict[str, str]]:
    path = csv_prefix.with_name(csv_prefix.name + "_failures.csv")
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _matplotlib() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_comparison_chart(
    engines: Sequence[str], rps: Sequence[float], p95: Sequence[float], path: Path
) -> None:
    """Write a PNG of requests/s and p95 (ms) per engine, side by side, to ``path``."""
    plt = _matplotlib()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.bar(engines, rps, color="tab:blue")
    left.set_title("requests per second (higher is better)")
    right.bar(engines, p95, color="tab:orange")
    right.set_title("p95 response time, ms (lower is better)")
    for axis in (left, right):
        axis.tick_params(axis="x", labelrotation=15)
        axis.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-style markdown table; numbers right-aligned."""
    cells = [[str(c) for c in headers], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [
        bool(rows)
        and all(_is_number(row[i]) for row in rows)
        and any(row[i] is not None for row in rows)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        padded = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        ("-" * (w + 1) + ":") if num else ("-" * (w + 2))
        for w, num in zip(widths, numeric, strict=True)
    )
    return "\n".join([line(cells[0]), rule + "|", *(line(r) for r in cells[1:])])


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def ms(value: float | None) -> int | None:
    """A response time in whole milliseconds (None shows as n/a)."""
    return None if value is None else round(value)


def ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "n/a"
    return f"{value / base:.2f}x"
