"""The HTTP bound for W2: a bare Starlette endpoint that reads the body and answers 200.

Served exactly as `reconciler serve` serves the service (one uvicorn worker, uvicorn's default
event loop and HTTP parser, access log off), so the difference is only what the service does.
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def webhook(request: Request) -> Response:
    await request.body()
    return JSONResponse({"applied": [], "parked": [], "duplicate": [], "ignored": []})


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/webhooks/runware", webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="A bare endpoint answering 200 (bench W2).")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        create_app(),
        host="127.0.0.1",
        port=args.port,
        log_level="info",
        proxy_headers=True,
        access_log=False,
    )


if __name__ == "__main__":
    main()
