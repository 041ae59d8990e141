"""Command line: `python -m core taxonomy|train|compare ...`. Bad input exits 2 with one readable message."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable, Sequence

from core.taxonomy import FORMATS, TaxonomyError, load_taxonomy

EXIT_BAD_INPUT = 2


class CliError(Exception):
    """A problem with the user's arguments or files; printed without a traceback."""


def cmd_taxonomy(args: argparse.Namespace) -> int:
    tax = load_taxonomy(args.path, format=args.format)
    summary = tax.summary()
    print(f"{args.path}: {summary['nodes']} nodes, {summary['leaves']} leaves, {summary['roots']} top-level, "
          f"depth {summary['max_depth']} (format: {summary['format']})")
    print("nodes per depth: " + ", ".join(f"{d}: {n}" for d, n in summary["depth_counts"].items()))
    counts = Counter(p.code for p in tax.problems)
    if counts:
        print(f"{len(tax.problems)} warnings: " + ", ".join(f"{n} {code}" for code, n in counts.most_common()))
        for p in tax.problems[: args.show_problems]:
            print(f"  {p}")
    if args.json:
        print(json.dumps({k: summary[k] for k in ("nodes", "leaves", "roots", "max_depth", "problems")}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Taxolens: taxonomy-aware categorization tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("taxonomy", help="load and validate a taxonomy file, print a summary")
    p.add_argument("path")
    p.add_argument("--format", choices=FORMATS, help="override format detection")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    p.add_argument("--show-problems", type=int, default=10, metavar="N", help="list the first N problems (default 10)")
    p.set_defaults(func=cmd_taxonomy)
    return parser




def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
        return handler(args)
    except (CliError, TaxonomyError, ValueError, FileNotFoundError, KeyError) as exc:
        message = str(exc).strip("'\"")
        print(f"error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
