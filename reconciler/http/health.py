"""`GET /healthz` (the process is alive) and `GET /readyz` (it can do its work: the database
answers and, when the engine runs a change feed, the feed is subscribed).

/readyz needs no credentials, so its body says only which component is in which state — a flat
`{component: short state}` dict plus the overall `status` — never an error's text: a driver's
message names hosts and ports, and may carry worse. The detail goes to the log instead, through
the redacting formatter.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from reconciler.ports import StoreUnavailable
from reconciler.services import Services

log = logging.getLogger(__name__)


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
        log.warning("not ready: database unavailable: %s", error)
        body["database"] = "unavailable"
        ready = False
    feed_state = services.engine.feed_state if services.engine is not None else None
    if feed_state is not None:
        body["feed"] = feed_state  # starting, subscribed, reconnecting or stopped
        ready = ready and feed_state == "subscribed"
    if services.engine is not None:
        # Shown, but not a reason to be unready: this replica still takes webhooks (which need
        # no Runware), and taking it out of the load balancer would lose them.
        body["runware"] = "failing" if services.engine.check_trouble is not None else "ok"
    body["status"] = "ready" if ready else "unavailable"
    return JSONResponse(body, status_code=200 if ready else 503)
