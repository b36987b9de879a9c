"""A Supabase Realtime stand-in: the Phoenix websocket protocol over changes from real Postgres.

Faithful where realtime-py depends on it (docs/realtime-py.md, "The Phoenix wire protocol"): the
`apikey` query parameter must be the configured key; `phx_join` on `realtime:<topic>` is
answered with each `postgres_changes` binding echoed plus a non-zero `id`, then the `system`
"Subscribed to PostgreSQL" message; a second join of a topic on one socket gets its reply and
then a `phx_close` tagged with the old join_ref (hazard 6); server frames carry
topic/event/payload/ref, never join_ref.

Changes come from a real database: the stand-in installs a test-only trigger
(`standin_realtime_changes`, function `standin_realtime.notify_change()`) on
`public.projects` that NOTIFYs each row change, and forwards it as a `postgres_changes` frame.
NOTIFY payloads stop at 8000 bytes, so an oversize record is trimmed the way Realtime trims
records over 1 MiB: only values of at most 64 bytes stay, and `errors` says
"Error 413: Payload Too Large".

Fault controls: `drop_connections()`, `send_stale_close()`, `refuse_connections`,
`answer_joins` (False: joins get no reply), `announce_ready` (False: no "Subscribed to
PostgreSQL" until `send_ready()`), `pause_events()`/`resume()`; `emit_change()` and
`emit_frame()` send frames directly.

A feed run against it, for tests: tests/realtime_harness.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from reconciler.local.serving import serve
from tests.standins.postgrest import SERVICE_ROLE_KEY

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "standin_realtime"  # also spelled out in _INSTALL_TRIGGER
SUBSCRIBED_MESSAGE = "Subscribed to PostgreSQL"
PAYLOAD_TOO_LARGE = "Error 413: Payload Too Large"  # also spelled out in _INSTALL_TRIGGER
# An error close code: realtime-py handles it as it handles a dropped network.
DROP_CLOSE_CODE = 1011

_INSTALL_TRIGGER = """
create schema if not exists standin_realtime;

-- Test-only: the realtime stand-in's change source. Never part of the migration.
create or replace function standin_realtime.notify_change() returns trigger
language plpgsql as $$
declare
    body jsonb := jsonb_build_object(
        'type', tg_op, 'schema', tg_table_schema, 'table', tg_table_name,
        'commit_timestamp',
        to_char(clock_timestamp() at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'errors', null);
    row_json jsonb;
begin
    if tg_op <> 'DELETE' then
        row_json := to_jsonb(new);
        body := body || jsonb_build_object('record', row_json);
    end if;
    if tg_op <> 'INSERT' then
        body := body || jsonb_build_object('old_record', jsonb_build_object('id', old.id));
    end if;
    if octet_length(body::text) > 7900 then
        body := body || jsonb_build_object(
            'record', (select coalesce(jsonb_object_agg(key, value), '{}')
                       from jsonb_each(row_json) where octet_length(value::text) <= 64),
            'errors', jsonb_build_array('Error 413: Payload Too Large'));
    end if;
    perform pg_notify('standin_realtime', body::text);
    return null;
end;
$$;

drop trigger if exists standin_realtime_changes on public.projects;
create trigger standin_realtime_changes
    after insert or update or delete on public.projects
    for each row execute function standin_realtime.notify_change();
"""

_COLUMNS = """
select a.attname as name, t.typname as type
from pg_attribute a join pg_type t on t.oid = a.atttypid
where a.attrelid = 'public.projects'::regclass and a.attnum > 0 and not a.attisdropped
order by a.attnum
"""

_DEFAULT_COLUMNS = [{"name": "id", "type": "uuid"}, {"name": "clips", "type": "jsonb"}]


def _now_timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class _Join:
    join_ref: str
    bindings: list[dict[str, Any]]

    def ids_for(self, data: dict[str, Any]) -> list[int]:
        return [binding["id"] for binding in self.bindings if _matches(binding, data)]


def _matches(binding: dict[str, Any], data: dict[str, Any]) -> bool:
    if binding.get("event") not in ("*", data["type"]):
        return False
    if binding.get("schema", "public") not in ("*", data["schema"]):
        return False
    if binding.get("table", "*") not in ("*", data["table"]):
        return False
    row_filter = binding.get("filter")
    if row_filter:
        # Only `column=eq.value` is accepted at join time (see `_bad_binding`).
        column, _, value = str(row_filter).partition("=eq.")
        row: dict[str, Any] = data.get("record") or data.get("old_record") or {}
        return str(row.get(column)) == value
    return True


def _bad_binding(binding: object) -> str | None:
    if not isinstance(binding, dict):
        return "binding is not an object"
    if binding.get("event") not in ("*", "INSERT", "UPDATE", "DELETE"):
        return f"invalid event {binding.get('event')!r}"
    row_filter = binding.get("filter")
    if row_filter is not None and "=eq." not in str(row_filter):
        return f"unsupported filter {row_filter!r}"
    return None


@dataclass(eq=False)
class _Connection:
    websocket: WebSocket
    channels: dict[str, _Join] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    closed: bool = False

    async def send(self, frame: dict[str, Any]) -> bool:
        async with self.lock:
            if self.closed:
                return False
            try:
                await self.websocket.send_text(json.dumps(frame))
            except Exception:
                # The client went away mid-send; its receive loop will notice too.
                self.closed = True
                return False
            return True

    async def close(self, code: int) -> None:
        async with self.lock:
            if self.closed:
                return
            self.closed = True
            with contextlib.suppress(Exception):
                await self.websocket.close(code=code)

    async def abort(self) -> None:
        """Cut the TCP connection without a close frame, as a network failure does.

        ASGI has no such message; uvicorn's protocol object (behind the `receive` callable
        Starlette keeps) owns the transport. Falls back to an error close if that changes.
        """
        protocol = getattr(self.websocket._receive, "__self__", None)
        transport = getattr(protocol, "transport", None)
        if not isinstance(transport, asyncio.WriteTransport):
            await self.close(DROP_CLOSE_CODE)
            return
        async with self.lock:
            self.closed = True
            transport.abort()


class RealtimeStandIn:
    """Serve with `running_standin()`, or `serve(stand_in.app())`: the URL is the Supabase URL."""

    def __init__(
        self,
        database_url: str | None = None,
        api_key: str = SERVICE_ROLE_KEY,
        *,
        refuse_connections: bool = False,
        answer_joins: bool = True,
        announce_ready: bool = True,
    ) -> None:
        self.database_url = database_url
        self.api_key = api_key
        self.url = ""  # set once served, see `running_standin`
        self.refuse_connections = refuse_connections
        self.answer_joins = answer_joins
        # False holds back "Subscribed to PostgreSQL" until `send_ready()`, as a server
        # whose replication slot is still starting does (realtime-js #525).
        self.announce_ready = announce_ready
        self.paused = False
        # Counters, for tests to wait on.
        self.connections_accepted = 0
        self.connections_refused = 0
        self.joins = 0
        self.leaves = 0
        self.heartbeats = 0
        self.access_tokens: list[str] = []
        self.events_sent = 0
        self.events_lost = 0
        self._connections: set[_Connection] = set()
        self._join_refs: dict[str, list[str]] = {}
        self._binding_ids = itertools.count(17)
        self._columns: list[dict[str, str]] = list(_DEFAULT_COLUMNS)
        self._db_events: asyncio.Queue[str] = asyncio.Queue()

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            async with self._database_changes():
                yield

        return Starlette(
            routes=[WebSocketRoute("/realtime/v1/websocket", self._endpoint)],
            lifespan=lifespan,
        )

    # --- fault controls ----------------------------------------------------------------------

    async def drop_connections(self, *, abrupt: bool = True) -> int:
        """Cut every socket (`abrupt`: no close frame; else close code 1011); return how many.

        Channels are not left first, just as when the network or the server fails.
        """
        connections = list(self._connections)
        for connection in connections:
            if abrupt:
                await connection.abort()
            else:
                await connection.close(DROP_CLOSE_CODE)
        return len(connections)

    async def send_stale_close(self) -> int:
        """Send each joined channel a `phx_close` tagged with an older join_ref (hazard 6)."""
        sent = 0
        for connection in list(self._connections):
            for topic, join in list(connection.channels.items()):
                stale = self._older_join_ref(topic, join.join_ref)
                frame = {"topic": topic, "event": "phx_close", "payload": {}, "ref": stale}
                sent += await connection.send(frame)
        return sent

    async def send_ready(self) -> int:
        """Send "Subscribed to PostgreSQL" to every channel with `postgres_changes` bindings."""
        sent = 0
        for connection in list(self._connections):
            for topic, join in list(connection.channels.items()):
                if join.bindings:
                    sent += await connection.send(_ready_frame(topic))
        return sent

    def pause_events(self) -> None:
        """Lose change events from now on, as the real server does for a gap in replication."""
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    async def emit_change(
        self,
        record: dict[str, Any] | None,
        type: str = "UPDATE",  # the wire protocol's own name
        *,
        errors: list[str] | None = None,
        old_record: dict[str, Any] | None = None,
        schema: str = "public",
        table: str = "projects",
    ) -> int:
        """Send a change as if the database had made it; return how many frames went out."""
        data: dict[str, Any] = {
            "schema": schema,
            "table": table,
            "type": type,
            "commit_timestamp": _now_timestamp(),
            "columns": self._columns,
            "errors": errors,
        }
        if type != "DELETE":
            data["record"] = record
        if type != "INSERT":
            primary_key = {"id": (record or {}).get("id")}
            data["old_record"] = primary_key if old_record is None else old_record
        return await self._broadcast(data)

    async def emit_frame(self, event: str, payload: Any) -> int:
        """Send any frame (junk included) to every joined channel."""
        sent = 0
        for connection in list(self._connections):
            for topic in list(connection.channels):
                frame = {"topic": topic, "event": event, "payload": payload, "ref": None}
                sent += await connection.send(frame)
        return sent

    # --- the database side --------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _database_changes(self) -> AsyncIterator[None]:
        if self.database_url is None:
            yield
            return
        conn = await asyncpg.connect(self.database_url)
        try:
            await conn.execute(_INSTALL_TRIGGER)
            rows = await conn.fetch(_COLUMNS)
            self._columns = [{"name": row["name"], "type": row["type"]} for row in rows]
            await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
            # One task forwards in commit order; the listener callback itself must not block.
            forwarder = asyncio.create_task(self._forward_database_changes())
            try:
                yield
            finally:
                forwarder.cancel()
                # asyncio.wait: the forwarder's cancellation is expected, but a cancellation
                # of whoever stops the stand-in must not be swallowed with it.
                await asyncio.wait([forwarder])
        finally:
            await conn.close()

    def _on_notify(
        self,
        _conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
        _pid: int,
        _channel: str,
        payload: object,
    ) -> None:
        self._db_events.put_nowait(str(payload))

    async def _forward_database_changes(self) -> None:
        while True:
            payload = await self._db_events.get()
            try:
                await self._broadcast(json.loads(payload) | {"columns": self._columns})
            except Exception:
                logger.exception("realtime stand-in could not forward a change")

    async def _broadcast(self, data: dict[str, Any]) -> int:
        if self.paused:
            self.events_lost += 1
            return 0
        sent = 0
        for connection in list(self._connections):
            for topic, join in list(connection.channels.items()):
                ids = join.ids_for(data)
                if not ids:
                    continue
                frame = {
                    "topic": topic,
                    "event": "postgres_changes",
                    "payload": {"ids": ids, "data": data},
                    "ref": None,
                }
                sent += await connection.send(frame)
        self.events_sent += sent
        return sent

    # --- the websocket side -------------------------------------------------------------------

    async def _endpoint(self, websocket: WebSocket) -> None:
        if self.refuse_connections or websocket.query_params.get("apikey") != self.api_key:
            self.connections_refused += 1
            await websocket.close(code=1008)  # before accept: the handshake gets HTTP 403
            return
        await websocket.accept()
        connection = _Connection(websocket)
        self._connections.add(connection)
        self.connections_accepted += 1
        try:
            while True:
                text = await websocket.receive_text()
                await self._handle(connection, text)
        except WebSocketDisconnect:
            pass
        finally:
            connection.closed = True
            self._connections.discard(connection)

    async def _handle(self, connection: _Connection, text: str) -> None:
        try:
            message = json.loads(text)
            topic, event = message["topic"], message["event"]
        except (ValueError, KeyError, TypeError):
            logger.warning("realtime stand-in ignored a malformed frame")
            return
        ref = message.get("ref")
        if topic == "phoenix" and event == "heartbeat":
            self.heartbeats += 1
            await connection.send(_reply("phoenix", ref, "ok", {}))
        elif event == "phx_join":
            await self._join(connection, topic, ref, message)
        elif topic not in connection.channels:
            await connection.send(_reply(topic, ref, "error", {"reason": "unmatched topic"}))
        elif event == "phx_leave":
            self.leaves += 1
            join = connection.channels.pop(topic)
            await connection.send(_reply(topic, ref, "ok", {}))
            await connection.send(
                {"topic": topic, "event": "phx_close", "payload": {}, "ref": join.join_ref}
            )
        elif event == "access_token":
            # The real server re-checks the token and answers nothing when it is valid.
            self.access_tokens.append(str((message.get("payload") or {}).get("access_token")))
        else:
            await connection.send(_reply(topic, ref, "ok", {}))

    async def _join(
        self, connection: _Connection, topic: str, ref: str | None, message: dict[str, Any]
    ) -> None:
        if not self.answer_joins:
            return
        join_ref = str(message.get("join_ref") or ref)
        payload = message.get("payload") or {}
        token = payload.get("access_token")
        if token is not None and token != self.api_key:
            await connection.send(_reply(topic, ref, "error", {"reason": "Invalid JWT"}))
            return
        bindings = (payload.get("config") or {}).get("postgres_changes") or []
        problems = [problem for b in bindings if (problem := _bad_binding(b))]
        if problems:
            await connection.send(_reply(topic, ref, "error", {"reason": problems[0]}))
            return
        echoed = [{**binding, "id": next(self._binding_ids)} for binding in bindings]
        previous = connection.channels.get(topic)
        connection.channels[topic] = _Join(join_ref, echoed)
        self._join_refs.setdefault(topic, []).append(join_ref)
        self.joins += 1
        await connection.send(_reply(topic, ref, "ok", {"postgres_changes": echoed}))
        if previous is not None:
            # The server still held the old channel: it closes it under its own join_ref.
            await connection.send(
                {"topic": topic, "event": "phx_close", "payload": {}, "ref": previous.join_ref}
            )
        if echoed and self.announce_ready:
            await connection.send(_ready_frame(topic))

    def _older_join_ref(self, topic: str, current: str) -> str:
        older = [ref for ref in self._join_refs.get(topic, []) if ref != current]
        return older[-1] if older else "0"


def _ready_frame(topic: str) -> dict[str, Any]:
    return {
        "topic": topic,
        "event": "system",
        "payload": {
            "channel": topic.removeprefix("realtime:"),
            "extension": "postgres_changes",
            "status": "ok",
            "message": SUBSCRIBED_MESSAGE,
        },
        "ref": None,
    }


def _reply(topic: str, ref: str | None, status: str, response: dict[str, Any]) -> dict[str, Any]:
    return {
        "topic": topic,
        "event": "phx_reply",
        "payload": {"status": status, "response": response},
        "ref": ref,
    }


# --- the test side ---------------------------------------------------------------------------

# realtime-py 2.34.1 logs `ConnectionClosed.code`/`.reason` when a socket drops; websockets 14+
# deprecates both. With warnings as errors that warning is raised inside realtime-py's listener
# task and kills it, so a drop is never reported. Tests of the production path ignore it; the
# dead-listener test keeps it as an error on purpose.
IGNORE_WEBSOCKETS_DEPRECATIONS = pytest.mark.filterwarnings(
    r"ignore:ConnectionClosed\.(code|reason) is deprecated:DeprecationWarning"
)


@contextlib.asynccontextmanager
async def running_standin(
    database_url: str | None = None, **settings: Any
) -> AsyncIterator[RealtimeStandIn]:
    """A stand-in served on loopback; its `url` is what a feed takes as the Supabase URL."""
    stand_in = RealtimeStandIn(database_url, **settings)
    async with serve(stand_in.app()) as url:
        stand_in.url = url
        yield stand_in
