"""Metrics and structured logs: how operators see what the service is doing.

Nothing outside this package imports prometheus_client: the engine, the webhook route and the
Runware client report through the small `Observer` interface, and the rest is read from
counters that already exist (`EngineStats`, the feeds' counters) at scrape time.
"""
