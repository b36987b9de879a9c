"""`reconciler status --url`: the same views, read from a running service's JSON API
(`/admin/api/…`, HTTP Basic with the admin token) instead of the database."""

from __future__ import annotations

from uuid import UUID

import httpx

from reconciler.operator.views import (
    Overview,
    ProjectView,
    overview_from_json,
    project_view_from_json,
)

_TIMEOUT_SECONDS = 30.0


class ServiceRefused(Exception):
    """The service could not be asked, or refused to answer; the message says which."""


class RemoteOperatorApi:
    def __init__(
        self, base_url: str, admin_token: str, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._base_url = base_url.rstrip("/")
        # Basic auth: the user name is ignored, the password is the admin token.
        self._auth = httpx.BasicAuth("operator", admin_token)
        self._transport = transport

    async def _get(self, path: str) -> tuple[int, dict[str, object]]:
        try:
            async with httpx.AsyncClient(
                timeout=_TIMEOUT_SECONDS, transport=self._transport
            ) as client:
                response = await client.get(f"{self._base_url}{path}", auth=self._auth)
        except httpx.HTTPError as error:
            raise ServiceRefused(f"service unreachable: {type(error).__name__}: {error}") from error
        if response.status_code == 401:
            raise ServiceRefused("the service refused the admin token (401)")
        if response.status_code == 404 and not path.startswith("/admin/api/projects/"):
            raise ServiceRefused("the service has no operator API at this URL (404)")
        if response.status_code not in (200, 404):
            raise ServiceRefused(f"the service answered {response.status_code}")
        try:
            body = response.json()
        except ValueError as error:
            raise ServiceRefused("the service's answer is not JSON") from error
        if not isinstance(body, dict):
            raise ServiceRefused(
                f"unexpected answer from the service: a JSON {type(body).__name__}"
            )
        return response.status_code, body

    async def overview(self) -> Overview:
        _, body = await self._get("/admin/api/overview")
        try:
            return overview_from_json(body)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ServiceRefused(f"unexpected overview from the service: {error!r}") from error

    async def project(self, project_id: UUID) -> ProjectView | None:
        status, body = await self._get(f"/admin/api/projects/{project_id}")
        if status == 404:
            return None
        try:
            return project_view_from_json(body)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ServiceRefused(f"unexpected project view from the service: {error!r}") from error
