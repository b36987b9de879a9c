"""The realtime stand-in speaks the Phoenix protocol the way realtime-py expects it
(docs/realtime-py.md, "The Phoenix wire protocol"), checked with a bare websocket client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.projects import new_project
from tests.standins.postgrest import SERVICE_ROLE_KEY
from tests.standins.realtime import RealtimeStandIn, running_standin

TOPIC = "realtime:projects-feed"
BINDING = {"event": "*", "schema": "public", "table": "projects"}


def socket_url(standin: RealtimeStandIn, apikey: str) -> str:
    base = standin.url.replace("http://", "ws://")
    return f"{base}/realtime/v1/websocket?apikey={apikey}&vsn=1.0.0"


def join(ref: str, bindings: list[dict[str, Any]] | None = None) -> str:
    config = {
        "broadcast": {"ack": False, "self": False},
        "presence": {"key": "", "enabled": False},
        "private": False,
        "postgres_changes": [BINDING] if bindings is None else bindings,
    }
    return json.dumps(
        {
            "topic": TOPIC,
            "event": "phx_join",
            "ref": ref,
            "join_ref": ref,
            "payload": {"config": config, "access_token": SERVICE_ROLE_KEY},
        }
    )


async def receive(ws: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await ws.recv())
    return frame


@asynccontextmanager
async def joined(standin: RealtimeStandIn) -> AsyncIterator[ClientConnection]:
    async with connect(socket_url(standin, SERVICE_ROLE_KEY)) as ws:
        await ws.send(join("1"))
        await receive(ws)  # the reply
        await receive(ws)  # "Subscribed to PostgreSQL"
        yield ws


async def test_a_wrong_apikey_is_refused() -> None:
    async with running_standin() as standin:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(socket_url(standin, "wrong")):
                pass
        assert refused.value.response.status_code == 403
        assert standin.connections_refused == 1


async def test_a_join_is_answered_with_ids_then_the_ready_message() -> None:
    async with running_standin() as standin, connect(socket_url(standin, SERVICE_ROLE_KEY)) as ws:
        await ws.send(join("1"))

        reply = await receive(ws)
        ready = await receive(ws)

        [echoed] = reply["payload"]["response"]["postgres_changes"]
        assert echoed.pop("id") != 0
        assert echoed == BINDING
        assert reply == {
            "topic": TOPIC,
            "event": "phx_reply",
            "payload": {"status": "ok", "response": reply["payload"]["response"]},
            "ref": "1",
        }
        assert ready == {
            "topic": TOPIC,
            "event": "system",
            "payload": {
                "channel": "projects-feed",
                "extension": "postgres_changes",
                "status": "ok",
                "message": "Subscribed to PostgreSQL",
            },
            "ref": None,
        }


async def test_heartbeats_and_leaves_are_answered() -> None:
    async with running_standin() as standin, joined(standin) as ws:
        heartbeat: dict[str, Any] = {
            "topic": "phoenix",
            "event": "heartbeat",
            "payload": {},
            "ref": None,
        }
        await ws.send(json.dumps(heartbeat | {"join_ref": None}))
        assert await receive(ws) == {
            "topic": "phoenix",
            "event": "phx_reply",
            "payload": {"status": "ok", "response": {}},
            "ref": None,
        }

        await ws.send(json.dumps({"topic": TOPIC, "event": "phx_leave", "payload": {}, "ref": "2"}))
        assert (await receive(ws))["payload"] == {"status": "ok", "response": {}}
        assert await receive(ws) == {
            "topic": TOPIC,
            "event": "phx_close",
            "payload": {},
            "ref": "1",
        }


async def test_a_second_join_on_one_socket_closes_the_old_one_after_the_reply() -> None:
    async with running_standin() as standin, joined(standin) as ws:
        await ws.send(join("3"))

        reply = await receive(ws)
        close = await receive(ws)

        assert (reply["event"], reply["ref"]) == ("phx_reply", "3")
        assert close == {"topic": TOPIC, "event": "phx_close", "payload": {}, "ref": "1"}


async def test_database_changes_arrive_as_postgres_changes_frames(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with running_standin(database_url) as standin, joined(standin) as ws:
        project = await new_project(db, {"job": "pending"}, name="film")
        await db.execute("delete from public.projects where id = $1", project)

        insert = await receive(ws)
        delete = await receive(ws)

    assert insert["topic"] == TOPIC
    assert insert["event"] == "postgres_changes"
    assert insert["ref"] is None
    [binding_id] = insert["payload"]["ids"]
    data = insert["payload"]["data"]
    assert set(data) == {
        "schema", "table", "type", "commit_timestamp", "columns", "errors", "record"
    }  # fmt: skip
    assert (data["schema"], data["table"], data["type"], data["errors"]) == (
        "public",
        "projects",
        "INSERT",
        None,
    )
    assert {"name": "id", "type": "uuid"} in data["columns"]
    assert {"name": "clips", "type": "jsonb"} in data["columns"]
    assert data["record"]["id"] == str(project)
    assert data["record"]["clips"] == {"job": "pending"}
    assert data["commit_timestamp"].endswith("Z")

    assert delete["payload"]["ids"] == [binding_id]
    assert delete["payload"]["data"]["type"] == "DELETE"
    assert delete["payload"]["data"]["old_record"] == {"id": str(project)}
    assert "record" not in delete["payload"]["data"]


async def test_bindings_filter_the_events_a_channel_gets(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with (
        running_standin(database_url) as standin,
        connect(socket_url(standin, SERVICE_ROLE_KEY)) as ws,
    ):
        await ws.send(join("1", [{"event": "UPDATE", "schema": "public", "table": "projects"}]))
        await receive(ws)
        await receive(ws)
        project = await new_project(db, {})  # an INSERT: not bound
        await db.execute("update public.projects set name = 'x' where id = $1", project)

        update = await receive(ws)

    assert update["payload"]["data"]["type"] == "UPDATE"
    assert update["payload"]["data"]["old_record"] == {"id": str(project)}
    assert standin.events_sent == 1
