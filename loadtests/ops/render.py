"""The results of ``ops`` as Markdown (ops.md, also printed), JSON (ops.json) and a chart.

A run (``single``) gives, per operation and engine, the commands and every
timed sample; here each run is reduced to its medians, and the runs to the
median of those with their spread (lowest-highest). A ratio is taken within
each run, mongo_sessions' median over the other engine's median from the same
rounds, and then spread over the runs the same way.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..report import _matplotlib, markdown_table
from ..results import git_revision, machine
from .engines import OURS
from .imports import ImportCost
from .measure import FULL_CYCLE, OPERATIONS

Run = dict[str, Any]

EMBEDDED_NOTE = (
    "The MongoDB server is the embedded SecantusDB, a pure-Python stand-in far slower "
    "than mongod: its wall times overstate what a real deployment sees, for mongo_sessions "
    "and for django-mongodb-backend alike. The command counts and bytes do not depend on "
    "the server. The client CPU mostly does not either, but it includes the kernel's share "
    "of each round trip and grows somewhat when the answer takes long (caches go cold "
    "while the process waits), so against the embedded server the figures of the MongoDB "
    "engines lean pessimistic."
)
#: Distributions whose versions the report names (the name readers know them by).
VERSIONED = {
    "Django": "Django",
    "pymongo": "pymongo",
    "redis": "redis-py",
    "psycopg": "psycopg",
    "django-mongodb-backend": "django-mongodb-backend",
    "SecantusDB": "SecantusDB",
}


def versions() -> str:
    """ "Django 5.2.19, pymongo 4.20.1, redis-py 8.1.0, ..." as installed here."""
    found = []
    for distribution, name in VERSIONED.items():
        try:
            found.append(f"{name} {importlib.metadata.version(distribution)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


# --- reducing the runs -------------------------------------------------------------------


def engines(runs: Sequence[Run]) -> list[tuple[str, dict[str, Any]]]:
    """(key, description) of each engine, in the order the runs measured them."""
    return list(runs[0]["engines"].items())


def ours(runs: Sequence[Run]) -> list[str]:
    return [key for key, _ in engines(runs) if key in OURS]


def others(runs: Sequence[Run]) -> list[str]:
    return [key for key, _ in engines(runs) if key not in OURS]


def label(runs: Sequence[Run], key: str) -> str:
    return str(runs[0]["engines"][key]["label"])


def run_medians(runs: Sequence[Run], op: str, key: str, what: str = "cpu_us") -> list[float]:
    """The median of ``what`` for ``op`` on ``key`` in each run."""
    return [statistics.median(run["operations"][op][key][what]) for run in runs]


def run_ratios(runs: Sequence[Run], op: str, key: str, base: str) -> list[float]:
    """``key``'s median client CPU over ``base``'s, within each run."""
    return [
        statistics.median(run["operations"][op][key]["cpu_us"])
        / statistics.median(run["operations"][op][base]["cpu_us"])
        for run in runs
    ]


def spread(values: Sequence[float], unit: str = "", digits: int = 0) -> str:
    """ "424" for one run, "424 (410-440)" for several: their median (lowest-highest)."""
    middle = f"{statistics.median(values):,.{digits}f}{unit}"
    if len(values) == 1:
        return middle
    return f"{middle} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def _number_cell(values: Sequence[float]) -> int | str:
    """A number (right-aligned) for one run, the spread for several."""
    return round(values[0]) if len(values) == 1 else spread(values)


def ratio_cell(values: Sequence[float]) -> str:
    return spread(values, "x", 2)


# --- Markdown --------------------------------------------------------------------------


def render(
    runs: Sequence[Run],
    args: argparse.Namespace,
    seed: int,
    notes: list[str],
    imports: dict[str, ImportCost] | None = None,
) -> str:
    """The whole report: setup, commands, client CPU and its ratios, wall time, bytes, imports."""
    lines = [
        *_header(runs, args, seed, notes),
        "## Commands to the store per call",
        "",
        "Counted on separate calls from the timed ones: "
        + "; ".join(f"{info['label']}: {info['unit']}" for _, info in engines(runs))
        + ".",
        "",
        _commands_table(runs),
        "",
        "## Median client CPU per call (µs)",
        "",
        *_runs_note(runs),
        _median_table(runs, "cpu_us"),
        "",
        "## Client CPU of mongo_sessions ÷ Django's engines, in the same rounds",
        "",
        "Below 1: mongo_sessions costs the client less CPU than that engine. Each ratio is "
        "taken within one run (the engines' calls interleaved), then spread over the runs.",
        "",
        _ratio_table(runs),
        "",
        "## Full request cycle (load, modify, save)",
        "",
        *_full_cycle(runs),
        "",
        "## Median wall time per call (µs, includes the store's own time)",
        "",
        _median_table(runs, "wall_us"),
        "",
        *([EMBEDDED_NOTE, ""] if any(run["embedded"] for run in runs) else []),
        "## Bytes stored per session",
        "",
        _bytes_table(runs),
        "",
        *_imports_section(imports),
        "Chart of the client CPU per operation and engine: ops.png.",
        "",
    ]
    return "\n".join(lines)


def _imports_section(imports: dict[str, ImportCost] | None) -> list[str]:
    if not imports:
        return []
    names = {
        "mongo_sessions": "mongo_sessions",
        "mongo_sessions_first_use": "mongo_sessions, with its first use",
        "cache": "Django's cache engine on Redis",
    }
    runs = len(next(iter(imports.values())).runs_ms)
    lines = [
        "## Import cost (python -X importtime)",
        "",
        "What each engine adds to the imports of a site (contenttypes, auth, sessions and "
        "django.http loaded): mongo_sessions in INSTALLED_APPS plus "
        "``import mongo_sessions.session``, which import no pymongo; with its first use, "
        "plus the driver modules the first session operation imports (pymongo, bson); "
        "the cache engine plus Django's Redis backend and "
        f"redis-py. Median over {runs} fresh interpreters per engine, taking turns "
        "(lowest-highest); the costliest modules of each, by their own time.",
        "",
    ]
    for key, cost in imports.items():
        top = ", ".join(f"{module} {ms:.1f}" for module, ms in cost.top_modules[:5])
        lines.append(
            f"- {names.get(key, key)}: {spread(cost.runs_ms, ' ms', 1)}; costliest (ms): {top}"
        )
    return [*lines, ""]


def _header(
    runs: Sequence[Run], args: argparse.Namespace, seed: int, notes: list[str]
) -> list[str]:
    run_notes = sorted({note for run in runs for note in run["notes"]})
    return [
        "# Per-operation cost of the session engines",
        "",
        f"- {args.runs} run(s), each a new process against a fresh MongoDB server; per run "
        f"{args.iterations} timed rounds after {args.warmup} untimed. A round calls every "
        "operation on every engine once, in an order shuffled for each round (seed "
        f"{seed}). Client CPU: time.process_time_ns() around each call (user and kernel "
        "time of the process). Medians per run; with several runs, the median of the "
        "runs' medians and their lowest-highest in parentheses.",
        f"- Machine: {machine()}; the stores run on this machine too.",
        f"- Versions: Python {runs[0]['python']}, {versions()}",
        f"- Commit: {git_revision()}",
        "",
        "Measured against:",
        "",
        *(f"- {info['label']}: {info['server']}" for _, info in engines(runs)),
        "",
        *(f"Note: {n}" for n in [*notes, *run_notes]),
        "",
    ]


def _runs_note(runs: Sequence[Run]) -> list[str]:
    if len(runs) == 1:
        return []
    return [f"Median of the {len(runs)} runs' medians (lowest-highest).", ""]


def _commands_cell(commands: list[str]) -> str:
    if not commands:
        return "0"
    return f"{len(commands)}: {', '.join(commands)}"


def _commands_table(runs: Sequence[Run]) -> str:
    keys = [key for key, _ in engines(runs)]
    return markdown_table(
        ["Operation", *(label(runs, k) for k in keys)],
        [
            [
                op.name,
                *(_commands_cell(runs[0]["operations"][op.name][k]["commands"]) for k in keys),
            ]
            for op in OPERATIONS
        ],
    )


def _median_table(runs: Sequence[Run], what: str) -> str:
    keys = [key for key, _ in engines(runs)]
    rows = [
        [op.name, *(_number_cell(run_medians(runs, op.name, k, what)) for k in keys)]
        for op in OPERATIONS
    ]
    return markdown_table(["Operation", *(label(runs, k) for k in keys)], rows)


def _ratio_table(runs: Sequence[Run]) -> str:
    pairs = [(mine, other) for mine in ours(runs) for other in others(runs)]
    headers = ["Operation", *(f"{label(runs, m)} ÷ {label(runs, o)}" for m, o in pairs)]
    rows = [
        [op.name, *(ratio_cell(run_ratios(runs, op.name, m, o)) for m, o in pairs)]
        for op in OPERATIONS
    ]
    return markdown_table(headers, rows)


def _full_cycle(runs: Sequence[Run]) -> list[str]:
    lines = []
    for key, info in engines(runs):
        cpu = spread(run_medians(runs, FULL_CYCLE, key), " µs")
        commands = runs[0]["operations"][FULL_CYCLE][key]["commands"]
        versus = ""
        if key in OURS:
            versus = "; " + ", ".join(
                f"{ratio_cell(run_ratios(runs, FULL_CYCLE, key, o))} {label(runs, o)}"
                for o in others(runs)
            )
        lines.append(
            f"- {info['label']}: {cpu} of client CPU per request, "
            f"{len(commands)} store commands{versus}"
        )
    return lines


def _bytes_table(runs: Sequence[Run]) -> str:
    base = ours(runs)[0] if ours(runs) else None
    rows = []
    for _, info in engines(runs):
        size = int(info["bytes"])
        versus = f"{size / runs[0]['engines'][base]['bytes']:.2f}x" if base else "n/a"
        rows.append([info["label"], size, versus, info["bytes_unit"]])
    headers = ["Engine", "Bytes", f"÷ {label(runs, base)}" if base else "÷", "Counted as"]
    return markdown_table(headers, rows)


# --- JSON and chart ----------------------------------------------------------------------


def to_json(
    runs: Sequence[Run],
    args: argparse.Namespace,
    seed: int,
    imports: dict[str, ImportCost] | None = None,
) -> dict[str, Any]:
    """Everything measured, for scripts: per operation and engine, per run and overall."""
    keys = [key for key, _ in engines(runs)]
    return {
        "imports_ms": {
            key: {"median": cost.median_ms, "runs": cost.runs_ms, "top_modules": cost.top_modules}
            for key, cost in (imports or {}).items()
        },
        "runs": len(runs),
        "iterations": args.iterations,
        "warmup": args.warmup,
        "seed": seed,
        "versions": versions(),
        "python": runs[0]["python"],
        "engines": {
            key: {name: info[name] for name in ("label", "server", "unit", "bytes", "bytes_unit")}
            for key, info in engines(runs)
        },
        "operations": {
            op.name: {
                key: {
                    "commands": runs[0]["operations"][op.name][key]["commands"],
                    "cpu_us_median": statistics.median(run_medians(runs, op.name, key)),
                    "cpu_us_run_medians": run_medians(runs, op.name, key),
                    "cpu_us_p90": statistics.median(
                        _quantile(run["operations"][op.name][key]["cpu_us"], 0.9) for run in runs
                    ),
                    "wall_us_median": statistics.median(run_medians(runs, op.name, key, "wall_us")),
                    "wall_us_run_medians": run_medians(runs, op.name, key, "wall_us"),
                }
                for key in keys
            }
            for op in OPERATIONS
        },
        "cpu_ratios": {
            op.name: {
                f"{mine}/{other}": {
                    "median": statistics.median(run_ratios(runs, op.name, mine, other)),
                    "runs": run_ratios(runs, op.name, mine, other),
                }
                for mine in ours(runs)
                for other in others(runs)
            }
            for op in OPERATIONS
        },
    }


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def draw_chart(runs: Sequence[Run], path: Path) -> None:
    """Write a PNG of the median client CPU per operation, one bar per engine, to ``path``.

    With several runs each bar is the median of the runs' medians, its whisker
    the lowest and highest of them.
    """
    plt = _matplotlib()
    keys = [key for key, _ in engines(runs)]
    names = [op.name for op in OPERATIONS]
    width = 0.8 / len(keys)
    fig, axis = plt.subplots(figsize=(11, 4.5))
    for i, key in enumerate(keys):
        per_op = [run_medians(runs, name, key) for name in names]
        heights = [statistics.median(values) for values in per_op]
        low = [h - min(v) for h, v in zip(heights, per_op, strict=True)]
        high = [max(v) - h for h, v in zip(heights, per_op, strict=True)]
        positions = [x + (i - (len(keys) - 1) / 2) * width for x in range(len(names))]
        axis.bar(
            positions,
            heights,
            width,
            label=label(runs, key),
            yerr=[low, high] if len(runs) > 1 else None,
            capsize=2,
        )
    axis.set_xticks(range(len(names)), names)
    axis.set_ylabel("median client CPU per call, µs (lower is better)")
    axis.set_title(f"Client CPU per session operation ({len(runs)} run(s), engines interleaved)")
    axis.grid(True, axis="y", alpha=0.3)
    axis.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
