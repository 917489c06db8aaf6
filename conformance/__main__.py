"""``python -m conformance --url URL``: check a registry and print what it does and does not do.

Exits 1 when any check fails, 2 on bad arguments, 0 otherwise (unsupported
optional features and skipped checks do not fail a run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from conformance.checks import CATEGORIES
from conformance.result import Result, Status
from conformance.runner import run_checks

STYLE = {
    Status.PASS: "green",
    Status.FAIL: "bold red",
    Status.SKIPPED: "yellow",
    Status.UNSUPPORTED: "cyan",
}


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m conformance",
        description="Black-box OCI Distribution Spec v1.1 checks against a registry URL.",
    )
    parser.add_argument(
        "--url", required=True, help="registry base URL, e.g. http://127.0.0.1:5000"
    )
    parser.add_argument(
        "--namespace", help="repository prefix for everything pushed (default conformance/<random>)"
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument(
        "--only",
        action="append",
        choices=CATEGORIES,
        metavar="CATEGORY",
        help=f"run one category (repeatable): {', '.join(CATEGORIES)}",
    )
    parser.add_argument("--check", action="append", metavar="NAME", help="run one check by name")
    return parser.parse_args(argv)


def render(results: list[Result], console: Console) -> None:
    table = Table(title="OCI Distribution Spec v1.1 conformance", show_lines=False)
    for column in ("category", "check", "status", "detail"):
        table.add_column(column, overflow="fold")
    for result in results:
        table.add_row(
            result.category,
            result.name,
            f"[{STYLE[result.status]}]{result.status}[/]",
            result.message,
        )
    console.print(table)
    counts = {status: sum(r.status == status for r in results) for status in Status}
    console.print(", ".join(f"{counts[status]} {status}" for status in Status))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    try:
        results = asyncio.run(
            run_checks(args.url, args.namespace, only=args.only, names=args.check)
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([result.as_dict() for result in results], indent=2))
    else:
        console = Console()
        # Piped output would wrap at 80 columns; the detail column needs room.
        render(results, console if console.is_terminal else Console(width=160))
    return 1 if any(result.status == Status.FAIL for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
