"""Read Locust's CSV files, draw the charts and format the tables."""

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


@dataclass
class History:
    """The Aggregated rows of ``_stats_history.csv``, one per second."""

    seconds: list[float]
    users: list[int]
    rps: list[float]
    failures_per_s: list[float]
    p50: list[float | None]
    p95: list[float | None]
    p99: list[float | None]


def read_history(csv_prefix: Path) -> History:
    path = csv_prefix.with_name(csv_prefix.name + "_stats_history.csv")
    history = History([], [], [], [], [], [], [])
    start: float | None = None
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["Name"] != "Aggregated":
                continue
            t = float(row["Timestamp"])
            start = t if start is None else start
            history.seconds.append(t - start)
            history.users.append(int(row["User Count"]))
            history.rps.append(_number(row["Requests/s"]) or 0.0)
            history.failures_per_s.append(_number(row["Failures/s"]) or 0.0)
            # A second with no request in the window has no percentile (written as 0).
            empty = not _number(row["Requests/s"]) and not _number(row["50%"])
            for series, column in (
                (history.p50, "50%"),
                (history.p95, "95%"),
                (history.p99, "99%"),
            ):
                series.append(None if empty else _number(row[column]))
    return history


def _matplotlib() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_history_chart(history: History, title: str, path: Path) -> None:
    """Requests/s (and failures/s) over time above p50/p95/p99 latency over time."""
    plt = _matplotlib()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    top.plot(history.seconds, history.rps, label="requests/s", color="tab:blue")
    if any(history.failures_per_s):
        top.plot(history.seconds, history.failures_per_s, label="failures/s", color="tab:red")
    top.set_ylabel("requests per second")
    top.set_ylim(bottom=0)
    top.grid(True, alpha=0.3)
    top.legend(loc="upper left")
    users = top.twinx()
    users.plot(history.seconds, history.users, color="tab:gray", linestyle=":", label="users")
    users.set_ylabel("users")
    users.set_ylim(bottom=0)
    for values, label, color in (
        (history.p50, "p50", "tab:green"),
        (history.p95, "p95", "tab:orange"),
        (history.p99, "p99", "tab:red"),
    ):
        points = [(t, v) for t, v in zip(history.seconds, values, strict=True) if v is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            bottom.plot(xs, ys, label=label, color=color)
    bottom.set_ylabel("response time, ms (last 10 s window)")
    bottom.set_xlabel("seconds since start")
    bottom.set_ylim(bottom=0)
    bottom.grid(True, alpha=0.3)
    bottom.legend(loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def draw_comparison_chart(
    engines: Sequence[str], rps: Sequence[float], p95: Sequence[float], path: Path
) -> None:
    """Requests/s and p95 per engine, side by side."""
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
