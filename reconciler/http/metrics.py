"""`GET /metrics`: Prometheus text format.

Like most exporters it trusts the network by default: serve it on a private network or keep it
behind the platform's routing (it reveals traffic and backlog sizes, though no secrets and no
project data). Where the port is public, `RECONCILER_METRICS_TOKEN` makes scrapes present it
as a bearer token (Prometheus: `authorization: {credentials: …}`); wrong ones count towards the
client address's failed-authentication limit (reconciler/http/auth_failures.py).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from reconciler.http.auth_failures import FailedAuthentications
from reconciler.http.requests import bearer_token
from reconciler.observability.metrics import CONTENT_TYPE, ServiceMetrics
from reconciler.tokens import matches_any


async def metrics(request: Request) -> Response:
    token = request.app.state.services.settings.metrics_token
    if token:
        failures: FailedAuthentications = request.app.state.auth_failures
        refused = failures.too_many(request, "metrics")
        if refused is not None:
            return refused
        if not matches_any(bearer_token(request), (token,)):
            failures.failed(request, "metrics")
            return Response(
                "unauthorized\n", status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
    service_metrics: ServiceMetrics = request.app.state.metrics
    return Response(await service_metrics.render(), media_type=CONTENT_TYPE)
