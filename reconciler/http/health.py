"""`GET /healthz` (the process is alive) and `GET /readyz` (it can do its work: the database
answers and, when the engine runs a change feed, the feed is subscribed)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from reconciler.ports import StoreUnavailable
from reconciler.services import Services


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    services: Services = request.app.state.services
    body: dict[str, str] = {}
    ready = True
    try:
        await services.store.ping()
        body["database"] = "ok"
    except StoreUnavailable as error:
        body["database"] = str(error)
        ready = False
    feed_state = services.engine.feed_state if services.engine is not None else None
    if feed_state is not None:
        body["feed"] = feed_state
        ready = ready and feed_state == "subscribed"
    body["status"] = "ready" if ready else "unavailable"
    return JSONResponse(body, status_code=200 if ready else 503)
