"""One loopback "Supabase project": the PostgREST-RPC stand-in and the realtime stand-in behind
a single URL, as SUPABASE_URL is for the service."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.applications import Starlette

from reconciler.local.serving import serve
from tests.standins.postgrest import PostgrestStandIn
from tests.standins.realtime import RealtimeStandIn


@dataclass(frozen=True)
class SupabaseStandIn:
    url: str
    rest: PostgrestStandIn
    realtime: RealtimeStandIn


@contextlib.asynccontextmanager
async def running_supabase(database_url: str) -> AsyncIterator[SupabaseStandIn]:
    rest = PostgrestStandIn(database_url)
    realtime = RealtimeStandIn(database_url)
    rest_app, realtime_app = rest.app(), realtime.app()

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with (
            rest_app.router.lifespan_context(rest_app),
            realtime_app.router.lifespan_context(realtime_app),
        ):
            yield

    app = Starlette(routes=[*rest_app.routes, *realtime_app.routes], lifespan=lifespan)
    async with serve(app) as url:
        realtime.url = url
        yield SupabaseStandIn(url, rest, realtime)
