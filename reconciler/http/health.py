"""`GET /healthz` (the process is alive) and `GET /readyz` (it can do its work: the database
answers and, when the engine runs a change feed, the feed is subscribed).

/readyz needs no credentials, so its body says only which component is in which state — a flat
`{component: short state}` dict plus the overall `status` — never an error's text: a driver's
message names hosts and ports, and may carry worse. The detail goes to the log instead, through
the redacting formatter.

Being anonymous, /readyz must not let anyone turn requests into database round trips that
compete with webhooks for the pool: the database's answer is asked at most once per
`READY_CACHE_SECONDS`, by one caller while the others wait for it, and reused until then
(a failure too: a database that is down is not asked more often). The feed's and Runware's
states are read from memory on every call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from reconciler.ports import StoreUnavailable
from reconciler.services import Services

log = logging.getLogger(__name__)

# "About a second": probes come every few seconds, so they always see a fresh answer, while a
# flood of anonymous calls costs one round trip a second.
READY_CACHE_SECONDS = 1.0


class Pingable(Protocol):
    async def ping(self) -> None: ...


class DatabaseReadiness:
    """Whether the database answers, asked at most once per `max_age_seconds`."""

    def __init__(
        self,
        store: Pingable,
        *,
        max_age_seconds: float = READY_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._max_age = max_age_seconds
        self._clock = clock
        self._asked_at: float | None = None
        self._answers = False
        # Callers arriving while the database is being asked wait for that answer.
        self._lock = asyncio.Lock()

    async def answers(self) -> bool:
        async with self._lock:
            now = self._clock()
            if self._asked_at is not None and now - self._asked_at < self._max_age:
                return self._answers
            try:
                await self._store.ping()
                self._answers = True
            except StoreUnavailable as error:
                log.warning("not ready: database unavailable: %s", error)
                self._answers = False
            # Stamped once answered: a ping that took long (a database timing out) is not
            # followed at once by the next one.
            self._asked_at = self._clock()
            return self._answers


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    services: Services = request.app.state.services
    database: DatabaseReadiness = request.app.state.database_readiness
    ready = await database.answers()
    body: dict[str, str] = {"database": "ok" if ready else "unavailable"}
    schema: str | None = getattr(request.app.state, "schema_problem", None)
    if schema is not None:
        # The engine waits for a schema that fits (see app.py): not ready until it runs.
        body["schema"] = schema
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
