"""`serve` starts with one line saying what it runs and against what: version, transport,
database host, Runware URL, archiving, feed; never a password."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from tests.processes import ServiceProcess

PASSWORD = "serve-sEcret-pw-0123"


async def test_the_first_line_names_version_transport_host_runware_archiving_and_feed(
    service_env: dict[str, str], database_url: str
) -> None:
    parts = urlsplit(database_url)
    # The test cluster trusts local connections: any password is accepted, and must not show.
    with_password = urlunsplit(
        parts._replace(
            netloc=f"{parts.username or 'postgres'}:{PASSWORD}@{parts.netloc.split('@')[-1]}"
        )
    )
    env = service_env | {"DATABASE_URL": with_password}
    async with ServiceProcess(env, capture_output=True) as service:
        output = await service.stop_and_read()
    first = next(line for line in output.splitlines() if "clip-reconciler" in line)
    assert "transport postgres" in first, output
    assert f"database {parts.hostname}:{parts.port}{parts.path}" in first
    assert f"Runware {service_env['RUNWARE_API_URL']}" in first
    assert "archiving off" in first
    assert "feed off" in first
    assert PASSWORD not in output
