"""`GET /metrics`: Prometheus text format, without authentication.

Like most exporters it trusts the network: serve it on a private network or keep it behind
the platform's routing, never on the public internet (it reveals traffic and backlog sizes,
though no secrets and no project data).
"""

from __future__ import annotations

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from starlette.requests import Request
from starlette.responses import Response

from reconciler.observability.metrics import ServiceMetrics


async def metrics(request: Request) -> Response:
    service_metrics: ServiceMetrics = request.app.state.metrics
    # The classic text format (0.0.4), which every Prometheus version scrapes; the metric
    # names need none of what the newer 1.0.0 variant adds.
    return Response(await service_metrics.render(), media_type=CONTENT_TYPE_PLAIN_0_0_4)
