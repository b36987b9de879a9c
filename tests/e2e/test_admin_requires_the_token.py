"""Every admin route answers 401 with a Basic challenge and no data unless the request carries
the admin token (or the service role key) as its Basic password, under any user name."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from reconciler.local.simulator import RunwareSimulator
from tests.job_ids import J
from tests.plugin import ADMIN_TOKEN, ServiceFactory
from tests.projects import clips_of, tracked_project
from tests.standins.postgrest import SERVICE_ROLE_KEY

JOB = J.job_only_an_operator_may_see
ROUTES = [
    ("GET", "/admin"),
    ("GET", "/admin/projects/{project}"),
    ("GET", "/admin/projects?project_id={project}"),
    ("POST", "/admin/projects/{project}/check"),
    ("GET", "/admin/api/overview"),
    ("GET", "/admin/api/projects/{project}"),
    ("GET", "/admin/static/admin.js"),
]


def basic(user: bytes, password: bytes) -> str:
    return "Basic " + base64.b64encode(user + b":" + password).decode()


REFUSED = {
    "no credentials": None,
    "wrong password": basic(b"operator", b"not-the-token"),
    "token as the user name": basic(ADMIN_TOKEN.encode(), b""),
    "token without a colon": "Basic " + base64.b64encode(ADMIN_TOKEN.encode()).decode(),
    "token as a bearer token": f"Bearer {ADMIN_TOKEN}",
    "not base64": "Basic %%%not-base64%%%",
    "not UTF-8": basic(b"\xff\xfe", b"\xff" + ADMIN_TOKEN.encode()),
    "token with a suffix": basic(b"operator", ADMIN_TOKEN.encode() + b"x"),
    "empty": "Basic",
}


@pytest.fixture
async def admin(
    service_env: dict[str, str], run_service: ServiceFactory
) -> AsyncIterator[httpx.AsyncClient]:
    # Both full-access secrets configured, as on a Supabase deployment with an admin token.
    env = service_env | {"SUPABASE_SERVICE_ROLE_KEY": SERVICE_ROLE_KEY}
    async with run_service(env) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client


@pytest.mark.parametrize("credentials", REFUSED.values(), ids=REFUSED.keys())
async def test_every_route_refuses_without_the_token(
    admin: httpx.AsyncClient,
    db: asyncpg.Connection,
    simulator: RunwareSimulator,
    credentials: str | None,
) -> None:
    simulator.add_job(JOB, duration=0, outcome="success")
    project = await tracked_project(db, {JOB: "pending"})
    headers = {} if credentials is None else {"Authorization": credentials}

    for method, route in ROUTES:
        response = await admin.request(method, route.format(project=project), headers=headers)

        assert response.status_code == 401, (method, route)
        assert response.headers["www-authenticate"] == 'Basic realm="reconciler admin"'
        assert response.headers["cache-control"] == "no-store"
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert JOB not in response.text
        assert str(project) not in response.text
        assert "set-cookie" not in response.headers

    assert simulator.counters.requests_total == 0
    assert await clips_of(db, project) == {JOB: "pending"}


@pytest.mark.parametrize("password", [ADMIN_TOKEN, SERVICE_ROLE_KEY], ids=["admin", "service"])
@pytest.mark.parametrize("user", ["", "operator"])
async def test_both_passwords_open_every_route(
    admin: httpx.AsyncClient, db: asyncpg.Connection, password: str, user: str
) -> None:
    project = await tracked_project(db, {JOB: "pending"})
    headers = {"Authorization": basic(user.encode(), password.encode())}

    page = await admin.get(f"/admin/projects/{project}", headers=headers)
    overview = await admin.get("/admin", headers=headers)
    as_json = await admin.get(f"/admin/api/projects/{project}", headers=headers)
    script = await admin.get("/admin/static/admin.js", headers=headers)

    assert page.status_code == 200
    assert JOB in page.text
    assert overview.status_code == 200
    assert JOB in overview.text  # the oldest unsettled jobs
    assert as_json.status_code == 200
    assert [clip["job_id"] for clip in as_json.json()["clips"]] == [JOB]
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    for response in (page, overview, as_json, script):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"
