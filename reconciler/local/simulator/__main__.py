"""Run the Runware simulator on its own: `python -m reconciler.local.simulator --port 8100`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence

from reconciler.local.simulator.config import (
    ApiFaults,
    JobDefaults,
    SimulatorConfig,
    VideoFiles,
    WebhookFaults,
)
from reconciler.local.simulator.core import RunwareSimulator


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability between 0 and 1")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must not be negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reconciler.local.simulator",
        description="A local Runware API (POST /v1) with async video jobs, webhooks and faults.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8100, help="port (default 8100, 0 = any)")
    parser.add_argument("--api-key", default="sim-api-key", help="the accepted Bearer key")
    parser.add_argument("--seed", type=int, default=None, help="seed for reproducible faults")
    parser.add_argument(
        "--job-seconds", type=_non_negative, default=5.0, help="how long a job runs"
    )
    parser.add_argument(
        "--fail-rate", type=_probability, default=0.0, help="share of jobs that end in error"
    )
    parser.add_argument(
        "--error-shape",
        choices=("errors", "data", "mixed"),
        default="mixed",
        help="how failures appear in getResponse answers",
    )
    parser.add_argument(
        "--webhook-shape",
        choices=("flat", "wrapped", "mixed"),
        default="mixed",
        help="webhook bodies as a flat item or wrapped in data/errors",
    )
    parser.add_argument("--drop-webhooks", type=_probability, default=0.0)
    parser.add_argument("--duplicate-webhooks", type=_probability, default=0.0)
    parser.add_argument("--delay-webhooks", type=_probability, default=0.0)
    parser.add_argument("--delay-seconds", type=_non_negative, default=3.0)
    parser.add_argument("--reorder-webhooks", type=_probability, default=0.0)
    parser.add_argument(
        "--early-webhooks",
        type=_probability,
        default=0.0,
        help="share of jobs whose webhook arrives before the submit is acknowledged",
    )
    parser.add_argument("--latency-ms", type=_non_negative, default=0.0, help="per request")
    parser.add_argument(
        "--error-rate",
        type=_probability,
        default=0.0,
        help="share of requests answered 429/503 with Retry-After",
    )
    parser.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds")
    parser.add_argument(
        "--serve-videos",
        action="store_true",
        help="video URLs on this server's own origin, answering real MP4 bytes (for archiving)",
    )
    parser.add_argument(
        "--video-bytes", type=int, default=64 * 1024, help="size of each served video"
    )
    return parser


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    return SimulatorConfig(
        api_key=args.api_key,
        seed=args.seed,
        jobs=JobDefaults(
            seconds=args.job_seconds, fail_rate=args.fail_rate, error_shape=args.error_shape
        ),
        webhooks=WebhookFaults(
            drop=args.drop_webhooks,
            duplicate=args.duplicate_webhooks,
            delay=args.delay_webhooks,
            delay_seconds=args.delay_seconds,
            reorder=args.reorder_webhooks,
            early=args.early_webhooks,
            shape=args.webhook_shape,
        ),
        api=ApiFaults(
            latency_seconds=args.latency_ms / 1000,
            error_rate=args.error_rate,
            retry_after_seconds=args.retry_after,
        ),
        videos=VideoFiles(on_own_origin=args.serve_videos, size_bytes=args.video_bytes),
    )


async def _run(args: argparse.Namespace) -> None:
    simulator = RunwareSimulator(config_from_args(args), host=args.host, port=args.port)
    await simulator.serve_forever(
        lambda url: print(f"Runware simulator listening on {url}", flush=True)
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # uvicorn re-raises the Ctrl-C it captured once it has shut down cleanly.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
