"""The results of ``ops`` as Markdown (ops.md, also printed) and JSON (ops.json)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..report import markdown_table, ratio
from ..results import git_revision, machine, versions
from .engines import Engine
from .measure import FULL_CYCLE, OPERATIONS, Measure

Results = dict[tuple[str, str], Measure]

EMBEDDED_NOTE = (
    "The MongoDB server is the embedded SecantusDB, a pure-Python stand-in far slower "
    "than mongod: its wall times overstate what a real deployment sees. The command "
    "counts do not depend on the server. The client CPU mostly does not either, but it "
    "includes the kernel's share of each round trip and grows somewhat when the answer "
    "takes long (caches go cold while the thread waits), so against the embedded "
    "server the mongo_sessions CPU figures lean pessimistic."
)


def render(
    engines: list[Engine],
    results: Results,
    args: argparse.Namespace,
    notes: list[str],
    embedded: bool,
) -> str:
    """The whole report: setup, commands per call, median CPU and wall time, the cycle."""
    lines = [
        *_header(engines, args, notes),
        "## Commands to the store per call",
        "",
        "Counted on separate calls from the timed ones: "
        + "; ".join(f"{e.label}: {e.unit}" for e in engines)
        + ".",
        "",
        _commands_table(engines, results),
        "",
        "## Median client CPU per call (µs)",
        "",
        f"Ratio: engine ÷ {engines[0].label} (above 1: the engine costs the client more CPU).",
        "",
        _median_table(engines, results, lambda m: m.cpu_median),
        "",
        "## Median wall time per call (µs, includes the store's own time)",
        "",
        _median_table(engines, results, lambda m: m.wall_median),
        "",
        *([EMBEDDED_NOTE, ""] if embedded else []),
        "## Full request cycle (load, modify, save): client CPU",
        "",
        *_full_cycle(engines, results),
        "",
    ]
    return "\n".join(lines)


def _header(engines: list[Engine], args: argparse.Namespace, notes: list[str]) -> list[str]:
    return [
        "# Per-operation cost of the session engines",
        "",
        f"- {args.iterations} timed calls per operation and engine after {args.warmup} "
        "untimed, the engines taking turns call by call; medians. Client CPU: "
        "time.thread_time_ns() around each call (user and kernel time of the calling thread).",
        f"- Machine: {machine()}; the stores run on this machine too.",
        f"- Versions: {versions('Django', 'pymongo', 'redis', 'psycopg', 'SecantusDB')}",
        f"- Commit: {git_revision()}",
        "",
        "Measured against:",
        "",
        *(f"- {e.label}: {e.server}" for e in engines),
        "",
        *(f"Note: {n}" for n in notes),
        "",
    ]


def _commands_cell(commands: list[str]) -> str:
    if not commands:
        return "0"
    return f"{len(commands)}: {', '.join(commands)}"


def _commands_table(engines: list[Engine], results: Results) -> str:
    return markdown_table(
        ["Operation", *(e.label for e in engines)],
        [
            [op.name, *(_commands_cell(results[e.key, op.name].commands) for e in engines)]
            for op in OPERATIONS
        ],
    )


def _median_table(
    engines: list[Engine], results: Results, median: Callable[[Measure], float]
) -> str:
    """Per operation: ``median`` of each engine, then each other engine's ratio to the first."""
    base, others = engines[0], engines[1:]
    rows = []
    for op in OPERATIONS:
        base_value = median(results[base.key, op.name])
        values = [median(results[e.key, op.name]) for e in engines]
        rows.append(
            [op.name, *(round(v) for v in values), *(ratio(v, base_value) for v in values[1:])]
        )
    return markdown_table(
        ["Operation", *(e.label for e in engines), *(f"{e.label} ÷ {base.label}" for e in others)],
        rows,
    )


def _full_cycle(engines: list[Engine], results: Results) -> list[str]:
    base = engines[0]
    base_cpu = results[base.key, FULL_CYCLE].cpu_median
    lines = []
    for e in engines:
        cpu = results[e.key, FULL_CYCLE].cpu_median
        commands = results[e.key, FULL_CYCLE].commands
        versus = "" if e is base else f", {ratio(cpu, base_cpu)} {base.label}"
        lines.append(
            f"- {e.label}: {cpu:,.0f} µs per request ({len(commands)} store commands{versus}) "
            f"- {e.server}"
        )
    return lines


def to_json(engines: list[Engine], results: Results, args: argparse.Namespace) -> dict[str, Any]:
    """Everything measured, for scripts: per operation and engine, commands and percentiles."""
    return {
        "iterations": args.iterations,
        "warmup": args.warmup,
        "engines": {e.key: {"label": e.label, "server": e.server, "unit": e.unit} for e in engines},
        "operations": {
            op.name: {
                e.key: {
                    "commands": results[e.key, op.name].commands,
                    "cpu_us_median": results[e.key, op.name].cpu_median,
                    "cpu_us_p90": _quantile(results[e.key, op.name].cpu_us, 0.9),
                    "wall_us_median": results[e.key, op.name].wall_median,
                    "wall_us_p90": _quantile(results[e.key, op.name].wall_us, 0.9),
                }
                for e in engines
            }
            for op in OPERATIONS
        },
    }


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
