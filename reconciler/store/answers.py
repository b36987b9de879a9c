"""Decoding a SQL function's JSON answer, the one place both transports do it.

Most answers are a few hundred bytes, but a full-access check of a project whose `clips` column
holds 20 MB answers with 20 MB (W11): decoded on the event loop, that held /healthz, webhooks
and every other request for about a second per answer. An answer above `OFF_LOOP_CHARS` is
decoded in a worker thread; a small one inline, where a thread hop would cost more than the
decode.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

# Decoding 256 KiB of JSON takes about a millisecond: below that the event loop barely
# notices, above it a thread hop (~50 µs) is the cheaper price.
OFF_LOOP_CHARS = 256 * 1024


class JsonText(str):
    """A `jsonb` value as PostgreSQL sent it, not decoded yet (asyncpg's codec hands it over
    as-is, so the decode can happen here, off the event loop when it is large)."""


async def decode_answer(text: str | bytes) -> Any:
    """The JSON value in `text`; a large one decoded without holding the event loop."""
    if len(text) <= OFF_LOOP_CHARS:
        return json.loads(text)
    return await asyncio.to_thread(json.loads, text)
