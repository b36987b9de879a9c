"""`python -m bench [--quick] [--only W1,W3] [--output PATH]`."""

from __future__ import annotations

import argparse
import sys

from bench.runner import WORKLOADS, run_bench
from tests import process_guard


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run the benchmarks side by side with their baselines; print a table and "
        "write results.json.",
    )
    parser.add_argument("--quick", action="store_true", help="scale every workload down")
    parser.add_argument(
        "--only",
        default=",".join(WORKLOADS),
        help=f"comma-separated workloads to run (default: {','.join(WORKLOADS)})",
    )
    parser.add_argument(
        "--output", default=None, help="where to write the JSON (default bench/results.json)"
    )
    args = parser.parse_args(argv)
    chosen = [name.strip().upper() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in WORKLOADS]
    if unknown or not chosen:
        parser.error(f"--only: unknown workload(s) {', '.join(unknown) or '(none)'}")
    args.only = chosen
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # Every process the bench starts is gone when it exits; one still running fails the run.
    return process_guard.run_guarded(
        lambda: run_bench(args.only, quick=args.quick, output=args.output), "python -m bench"
    )


if __name__ == "__main__":
    sys.exit(main())
