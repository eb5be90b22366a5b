"""``python -m loadtests run|ops``: the load test and the per-operation benchmark."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests",
        description="Load test and per-operation benchmark of django-mongo-sessions.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    from . import ops, run

    run.add_arguments(
        commands.add_parser(
            "run",
            help="the demo stack under Locust, once per session engine",
            description=run.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    ops.add_arguments(
        commands.add_parser(
            "ops",
            help="MongoDB commands and client CPU per session operation, next to Django's "
            "cache and db engines",
            description=ops.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    args = parser.parse_args(argv)
    if args.command == "run":
        return run.main(args)
    return ops.main(args)


if __name__ == "__main__":
    sys.exit(main())
