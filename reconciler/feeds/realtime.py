"""The Supabase transport's change feed: realtime `postgres_changes` on `public.projects`.

realtime-py (2.34) loses events silently in several ways (docs/realtime-py.md,
"Hazards"), so this module trusts none of its recovery and supervises it instead:

- callbacks are plain functions that cannot raise (a raising callback kills the listener task)
  and only queue work or call the non-blocking hints; a task of ours does the rest;
- realtime-py's own reconnect is off: it gives up for good after `max_retries`, and it would
  race with ours. Any sign of trouble — CLOSED (also sent by a stale `phx_close` after a
  rejoin), CHANNEL_ERROR, TIMED_OUT, a socket down or a join unanswered for too long — throws
  the client and its channel away and builds new ones after a backoff with jitter;
- events sent while disconnected are lost for good, so every subscription ends in `resync()`
  once the server says replication is live ("Subscribed to PostgreSQL"; SUBSCRIBED alone can
  come seconds early), or after `ready_timeout` if that message never comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

from realtime import AsyncRealtimeChannel, AsyncRealtimeClient
from realtime.message import SuccessSystemPayload
from realtime.types import (
    PostgresChangesPayload,
    RealtimePostgresChangesListenEvent,
    RealtimeSubscribeStates,
)

from reconciler.backoff import Backoff
from reconciler.clips import is_pending
from reconciler.ports import FeedHints, FeedState

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


def realtime_url(supabase_url: str) -> str:
    """`https://x.supabase.co` → `wss://x.supabase.co/realtime/v1`, as supabase-py builds it.

    realtime-py appends `/websocket?apikey=…&vsn=1.0.0` itself.
    """
    parts = urlsplit(supabase_url)
    # Checked here because websockets would report a bad URL with the apikey in the message.
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {supabase_url!r}")
    scheme = "wss" if parts.scheme in ("https", "wss") else "ws"
    path = parts.path.rstrip("/") + "/realtime/v1"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def project_to_hint(data: Mapping[str, Any]) -> UUID | None:
    """The project a change's `data` should wake, or None when it has nothing pending.

    Raises ValueError/TypeError/KeyError on a payload without a usable id. A record the
    server trimmed (`errors`, e.g. "Error 413: Payload Too Large") or without `clips` (e.g. an
    unchanged TOASTed column) cannot be judged, so it is hinted anyway: a needless reconcile
    costs one read, a missed one leaves a clip pending until the next sweep.
    """
    if data["type"] == "DELETE":
        return None
    record = data.get("record") or {}
    raw_id = record.get("id")
    if raw_id is None:
        raw_id = (data.get("old_record") or {})["id"]
    project_id = UUID(str(raw_id))
    clips = record.get("clips")
    if data.get("errors") or not isinstance(clips, dict):
        return project_id
    return project_id if any(is_pending(value) for value in clips.values()) else None


class _Subscription:
    """One realtime-py client with one channel: built, watched, and then discarded whole."""

    def __init__(self, client: AsyncRealtimeClient, started_at: float) -> None:
        self.client = client
        self.channel: AsyncRealtimeChannel | None = None
        self.started_at = started_at
        self.subscribed_at: float | None = None
        self.trouble = asyncio.Event()
        self.reason = ""
        # Set by SUBSCRIBED, cleared by the resync that follows once replication is live.
        self.resync_due = False
        self.ready = False

    def fail(self, reason: str) -> None:
        if not self.trouble.is_set():
            self.reason = reason
            self.trouble.set()

    async def dispose(self) -> None:
        """Close the client and wait for every task realtime-py started for it.

        `close()` cancels the listener and heartbeat tasks without awaiting them and leaves the
        channel's rejoin timer, push timeouts and background pushes running; left alone they
        outlive the feed and end as "Task was destroyed but it is pending" at loop shutdown.
        """
        tasks: list[asyncio.Task[Any] | None] = [
            self.client._listen_task,
            self.client._heartbeat_task,
        ]
        channel = self.channel
        if channel is not None:
            pushes = [channel.join_push, *channel.messages_waiting_for_ack.values()]
            pushes += channel._push_buffer
            tasks += [push.timeout_task for push in pushes]
            tasks += [channel.rejoin_timer.timer, *channel._background_tasks]
        try:
            await self.client.close()
        except Exception:
            logger.debug("closing a realtime client failed", exc_info=True)
        current = asyncio.current_task()
        leftovers = {task for task in tasks if task is not None and task is not current}
        for task in leftovers:
            task.cancel()
        # Awaiting also retrieves exceptions, so none is reported as "never retrieved".
        await asyncio.gather(*leftovers, return_exceptions=True)


async def _dispose_even_if_cancelled(subscription: _Subscription) -> None:
    """A cancellation that lands mid-cleanup waits for the cleanup, then carries on."""
    cleanup = asyncio.create_task(subscription.dispose())
    try:
        await asyncio.shield(cleanup)
    except asyncio.CancelledError:
        await cleanup
        raise


class RealtimeFeed:
    """A `ChangeFeed` over Supabase realtime that rebuilds its client whenever in doubt.

    Rebuilds wait `initial_backoff` doubling up to `rebuild_backoff_cap` (the shared
    `reconciler.backoff.Backoff`, equal jitter drawn from `rng`); a subscription that lasted
    `healthy_after` seconds resets that. The watchdog runs every `health_check_interval` and
    rebuilds when the socket has been down for `disconnect_grace`, realtime-py's listener task
    has ended, or the channel is still not joined after twice `join_timeout`. `ready_timeout`
    bounds the wait for the server's ready message before the resync. `queue_size` bounds
    events waiting for the consumer.

    Counters, which `GET /metrics` exports as `reconciler_feed_*_total` (see
    observability/metrics.py, `FeedCounters`): `rebuilds` (clients thrown away and replaced),
    `events_received` (change payloads delivered by realtime-py), `callback_errors` (events or
    hints that failed and were skipped), `events_dropped` (events lost to a full queue; each
    run of them ends in a resync once the queue has drained).
    """

    def __init__(
        self,
        supabase_url: str,
        api_key: str,
        *,
        table: str = "projects",
        schema: str = "public",
        topic: str = "reconciler-projects",
        initial_backoff: float = 1.0,
        rebuild_backoff_cap: float = 30.0,
        healthy_after: float = 30.0,
        hb_interval: float = 25.0,
        join_timeout: float = 10.0,
        health_check_interval: float = 1.0,
        disconnect_grace: float = 3.0,
        ready_timeout: float = 5.0,
        queue_size: int = 10_000,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._url = realtime_url(supabase_url)
        self._api_key = api_key
        self._table = table
        self._schema = schema
        self._topic = topic
        # "Equal jitter": never below half the ceiling, so a refusing server is never hammered.
        self._backoff = Backoff(initial_backoff, rebuild_backoff_cap, jitter="equal")
        self._rng = rng if rng is not None else random.Random()
        self._healthy_after = healthy_after
        # realtime-py takes whole seconds (and never beats more often than every 15 s).
        self._hb_interval = math.ceil(hb_interval)
        self._join_timeout = max(1, math.ceil(join_timeout))
        self._health_check_interval = health_check_interval
        self._disconnect_grace = disconnect_grace
        self._ready_timeout = ready_timeout
        self._queue_size = queue_size
        self._sleep = sleep
        self._state: FeedState = "starting"
        self._current: _Subscription | None = None
        self._overflowed = False
        self.rebuilds = 0
        self.events_received = 0
        self.callback_errors = 0
        self.events_dropped = 0

    @property
    def state(self) -> FeedState:
        return self._state

    async def run(self, hints: FeedHints) -> None:
        self._state = "starting"
        changes: asyncio.Queue[PostgresChangesPayload] = asyncio.Queue(self._queue_size)
        consumer = asyncio.create_task(self._consume(changes, hints), name="realtime-consumer")
        failures = 0
        try:
            while True:
                subscription = self._new_subscription()
                try:
                    await self._open(subscription, changes, hints)
                    await self._watch(subscription, hints)
                finally:
                    self._current = None
                    await _dispose_even_if_cancelled(subscription)
                logger.warning("realtime feed rebuilding its client: %s", subscription.reason)
                failures = 0 if self._was_healthy(subscription) else failures + 1
                self._mark_reconnecting()
                self.rebuilds += 1
                # `failures` counts from 1 (0 after a healthy run); the backoff from 0.
                await self._sleep(self._backoff.delay(max(failures - 1, 0), self._rng))
        finally:
            self._state = "stopped"
            consumer.cancel()
            # gather, not `suppress(CancelledError)`: a cancellation of this task arriving while
            # it waits must not be swallowed.
            await asyncio.gather(consumer, return_exceptions=True)

    def _mark_reconnecting(self) -> None:
        # "starting" lasts until the first subscription; later gaps are "reconnecting".
        if self._state == "subscribed":
            self._state = "reconnecting"

    # --- building and watching one subscription ----------------------------------------------

    def _new_subscription(self) -> _Subscription:
        client = AsyncRealtimeClient(
            self._url,
            token=self._api_key,
            auto_reconnect=False,
            hb_interval=self._hb_interval,
            timeout=self._join_timeout,
        )
        subscription = _Subscription(client, asyncio.get_running_loop().time())
        self._current = subscription
        return subscription

    async def _open(
        self,
        subscription: _Subscription,
        changes: asyncio.Queue[PostgresChangesPayload],
        hints: FeedHints,
    ) -> None:
        """Connect and subscribe; failures are recorded on the subscription, never raised."""
        client = subscription.client
        try:
            await client.connect()
            channel = client.channel(self._topic)
            subscription.channel = channel
            channel.on_postgres_changes(
                RealtimePostgresChangesListenEvent.All,
                self._change_callback(changes, hints),
                table=self._table,
                schema=self._schema,
            )
            channel.on_system(self._system_callback(subscription, hints))
            await channel.subscribe(self._state_callback(subscription, hints))
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}".replace(self._api_key, "<redacted>")
            subscription.fail(f"connect/subscribe failed: {reason}")

    async def _watch(self, subscription: _Subscription, hints: FeedHints) -> None:
        """Return once the subscription is in trouble, checking what no callback reports."""
        loop = asyncio.get_running_loop()
        disconnected_since: float | None = None
        while not subscription.trouble.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._health_check_interval):
                    await subscription.trouble.wait()
            now = loop.time()
            # is_connected turns False without any state callback when the channel was not
            # joined at that moment (e.g. waiting for realtime-py's own rejoin timer).
            if subscription.client.is_connected:
                disconnected_since = None
            elif disconnected_since is None:
                disconnected_since = now
            elif now - disconnected_since >= self._disconnect_grace:
                subscription.fail("socket disconnected")
            # Anything raised in realtime-py's listener task ends it while `is_connected` stays
            # True: every later frame, close included, is then ignored without a word.
            listener = subscription.client._listen_task
            if subscription.client.is_connected and listener is not None and listener.done():
                subscription.fail("listener task ended")
            channel = subscription.channel
            joined = channel is not None and channel.is_joined
            if not joined and now - subscription.started_at > self._join_timeout * 2:
                subscription.fail("channel not joined")
            subscribed_at = subscription.subscribed_at
            overdue = subscribed_at is not None and now - subscribed_at >= self._ready_timeout
            if subscription.resync_due and overdue:
                logger.info("realtime server sent no ready message; resyncing anyway")
                self._resync(subscription, hints)

    def _was_healthy(self, subscription: _Subscription) -> bool:
        """A subscription that lasted resets the backoff; a flapping server does not."""
        if subscription.subscribed_at is None:
            return False
        lasted = asyncio.get_running_loop().time() - subscription.subscribed_at
        return lasted >= self._healthy_after

    # --- callbacks: run inside realtime-py's listener task, so they must never raise ----------

    def _state_callback(
        self, subscription: _Subscription, hints: FeedHints
    ) -> Callable[[RealtimeSubscribeStates, Exception | None], None]:
        def on_state(status: RealtimeSubscribeStates, error: Exception | None) -> None:
            try:
                # A discarded or failing client may still report (e.g. CLOSED while closing).
                if subscription is not self._current or subscription.trouble.is_set():
                    return
                if status == RealtimeSubscribeStates.SUBSCRIBED:
                    subscription.subscribed_at = asyncio.get_running_loop().time()
                    subscription.resync_due = True
                    self._state = "subscribed"
                    logger.info("realtime feed subscribed to %s.%s", self._schema, self._table)
                    if subscription.ready:
                        self._resync(subscription, hints)
                else:
                    subscription.fail(f"{status.value}: {error!r}")
            except Exception:
                self._callback_failed("subscribe state callback")

        return on_state

    def _system_callback(
        self, subscription: _Subscription, hints: FeedHints
    ) -> Callable[[SuccessSystemPayload], None]:
        def on_system(payload: SuccessSystemPayload) -> None:
            try:
                if subscription is not self._current:
                    return
                if payload.extension == "postgres_changes":
                    subscription.ready = True
                    if subscription.resync_due:
                        self._resync(subscription, hints)
            except Exception:
                self._callback_failed("system callback")

        return on_system

    def _change_callback(
        self, changes: asyncio.Queue[PostgresChangesPayload], hints: FeedHints
    ) -> Callable[[PostgresChangesPayload], None]:
        def on_change(payload: PostgresChangesPayload) -> None:
            try:
                self.events_received += 1
                changes.put_nowait(payload)
            except asyncio.QueueFull:
                # Lost either way; the consumer asks for one sweep once it has caught up.
                self.events_dropped += 1
                self._overflowed = True
            except Exception:
                self._callback_failed("change callback")

        return on_change

    def _resync(self, subscription: _Subscription, hints: FeedHints) -> None:
        subscription.resync_due = False
        subscription.ready = False
        self._call_hint(hints.resync)

    def _call_hint(self, hint: Callable[[], None]) -> None:
        try:
            hint()
        except Exception:
            self._callback_failed("resync hint")

    def _callback_failed(self, what: str) -> None:
        self.callback_errors += 1
        logger.exception("realtime feed: %s failed; continuing", what)

    # --- our own task: turns change payloads into project hints ------------------------------

    async def _consume(
        self, changes: asyncio.Queue[PostgresChangesPayload], hints: FeedHints
    ) -> None:
        while True:
            payload = await changes.get()
            try:
                project_id = project_to_hint(payload["data"])
                if project_id is not None:
                    hints.project_changed(project_id)
            except Exception:
                self._callback_failed("handling a change event")
            # Only a sweep that starts after the last dropped event is sure to cover it.
            if self._overflowed and changes.empty():
                self._overflowed = False
                self._call_hint(hints.resync)
