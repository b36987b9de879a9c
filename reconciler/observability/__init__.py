"""Metrics and structured logs: how operators see what the service is doing.

No other module of the service imports prometheus_client (tests/unit checks it): the engine,
the webhook route and the Runware client report through the small `Observer` interface, the
rest is read from counters that already exist (`EngineStats`, the feeds' counters) at scrape
time, and `GET /metrics` serves what `ServiceMetrics.render` returns, as `CONTENT_TYPE`.
"""
