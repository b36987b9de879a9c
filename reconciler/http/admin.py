"""`GET /admin`: the operator's page — what is in flight, what is stuck and why — and the JSON
under it (`/admin/api/…`), which the page's refresh script and `reconciler status --url` read.

Every route sits behind the admin token: HTTP Basic, any user name, the password being
`RECONCILER_ADMIN_TOKEN` or the service role key. Without it: 401 and no data; too many wrong
ones from one address: 429 (reconciler/http/auth_failures.py). The page is
server-rendered (Jinja2, autoescaped: job ids, error texts and URLs are caller-controlled) with
a strict Content-Security-Policy — no inline script or style, scripts and styles only from
`/admin/static/` — and embeds no secret: the browser re-sends the Basic credentials itself.

Its one action, "check now", is the check endpoint's own path (`ClipChecker.check_for` as a
full-access caller) behind a CSRF guard (reconciler/http/csrf.py), answered POST/redirect/GET.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import importlib.resources
import logging
import math
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import jinja2
import markupsafe
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from reconciler.callers import ServiceCaller
from reconciler.checker import ProjectNotFound
from reconciler.http.auth_failures import FailedAuthentications
from reconciler.http.csrf import FIELD_NAME, CsrfGuard, CsrfRejected, derive_secret
from reconciler.http.requests import BodyTooLarge, read_capped_body
from reconciler.observability.logs import escape_unsafe, unsafe_pattern_for_javascript
from reconciler.operator.views import (
    Overview,
    ProjectView,
    find,
    read_overview,
    read_project_view,
)
from reconciler.ports import StoreRejected, StoreUnavailable
from reconciler.services import Services
from reconciler.tokens import matches_any

log = logging.getLogger(__name__)

REALM = 'Basic realm="reconciler admin"'
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
OLDEST_LIMIT = 20
REFRESH_SECONDS = 5
MAX_FORM_BYTES = 4096
STATIC_FILES = {
    "escape.js": "text/javascript",
    "admin.js": "text/javascript",
    "admin.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
_FLASH = re.compile(r"(\d{1,7})-(\d{1,7})-(\d{1,7})-(\d{1,7})")

Endpoint = Callable[[Request, Services], Awaitable[Response]]


# --- Rendering -------------------------------------------------------------------------------


def _relative(moment: datetime | None, now: datetime) -> str:
    """A moment as "3m 10s ago" / "in 12s", read at a glance (the exact time is the
    element's title)."""
    if moment is None:
        return "—"
    seconds = (moment - now).total_seconds()
    magnitude = abs(seconds)
    if magnitude < 1:
        return "now"
    if magnitude < 60:
        text = f"{math.floor(magnitude)}s"
    elif magnitude < 3600:
        text = f"{math.floor(magnitude / 60)}m {math.floor(magnitude % 60)}s"
    elif magnitude < 86400:
        text = f"{math.floor(magnitude / 3600)}h {math.floor(magnitude % 3600 / 60)}m"
    else:
        text = f"{math.floor(magnitude / 86400)}d {math.floor(magnitude % 86400 / 3600)}h"
    return f"in {text}" if seconds > 0 else f"{text} ago"


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat()


def _link(value: object) -> str | None:
    """The value as a link target, only when it is an http(s) URL (never `javascript:`)."""
    if not isinstance(value, str):
        return None
    try:
        scheme = urlsplit(value).scheme
    except ValueError:
        return None
    return value if scheme in ("http", "https") else None


def _visible(value: object) -> object:
    """Every value the page prints, before HTML escaping: app text (job ids, clip values,
    Runware's reasons, replica names) with its control, bidi and invisible characters written
    as escapes — the rule of the log lines and the terminal (observability/logs.py), so a key
    holding U+202E cannot reorder the page. Markup (a macro's output) is the page's own."""
    if isinstance(value, str) and not isinstance(value, markupsafe.Markup):
        return escape_unsafe(value)
    return value


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("reconciler.http", "templates"),
        autoescape=True,  # always, whatever a template's name: every value is escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_visible,
    )
    environment.filters["iso"] = _iso
    environment.globals["relative"] = _relative
    environment.globals["link"] = _link
    return environment


_TEMPLATES = _environment()
_STATIC = {
    name: importlib.resources.files("reconciler.http").joinpath("static", name).read_bytes()
    for name in STATIC_FILES
}


def _base(request: Request) -> str:
    """Where /admin is as the browser sees it (behind a proxy that mounts us under a prefix)."""
    return f"{request.scope.get('root_path', '')}/admin"


def _page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _TEMPLATES.get_template(template).render(
        base=_base(request),
        refresh_seconds=REFRESH_SECONDS,
        unsafe_pattern=unsafe_pattern_for_javascript(),
        **context,
    )
    return HTMLResponse(html, status_code=status)


def _error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return _page(request, "error.html", status, title=title, message=message)


def _json_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


# --- Access ----------------------------------------------------------------------------------


def basic_password(request: Request) -> str | None:
    """The password of an `Authorization: Basic` header (any user name), or None."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # also UnicodeDecodeError
        return None
    _, colon, password = decoded.partition(":")
    return password if colon else None


def _guarded(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint behind the admin token, every answer with the security headers."""

    async def guarded(request: Request) -> Response:
        services: Services = request.app.state.services
        failures: FailedAuthentications = request.app.state.auth_failures
        refused = failures.too_many(request, "admin")
        if refused is not None:
            response = refused
        elif matches_any(basic_password(request), services.settings.caller_tokens):
            response = await endpoint(request, services)
        else:
            failures.failed(request, "admin")
            response = Response(
                "Authentication required\n",
                status_code=401,
                media_type="text/plain",
                headers={"WWW-Authenticate": REALM},
            )
        response.headers.update(SECURITY_HEADERS)
        return response

    return guarded


def _csrf(services: Services) -> CsrfGuard:
    return CsrfGuard(derive_secret(services.settings.caller_tokens))


def _project_id(request: Request) -> UUID | None:
    try:
        return UUID(str(request.path_params["project_id"]))
    except ValueError:
        return None


# --- Reads -----------------------------------------------------------------------------------


class _ReadFailed(Exception):
    """The database could not answer: 503 when unreachable (try again), 500 when it refused."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def page(self, request: Request) -> HTMLResponse:
        return _error_page(request, self.status, self.message, "Try again in a moment.")

    def json(self) -> Response:
        headers = {"Retry-After": "1"} if self.status == 503 else None
        return _json_error(self.status, self.message.lower(), headers)


@contextlib.contextmanager
def _reading(what: str) -> Iterator[None]:
    try:
        yield
    except StoreUnavailable as error:
        log.warning("admin %s: database unavailable: %s", what, error)
        raise _ReadFailed(503, "Database unavailable") from error
    except StoreRejected as error:
        log.error("admin %s: the database refused the read: %s", what, error)
        raise _ReadFailed(500, "Internal error") from error


async def _overview(services: Services) -> Overview:
    with _reading("overview"):
        return await read_overview(services.store, oldest_limit=OLDEST_LIMIT)


async def _project(services: Services, project_id: UUID) -> ProjectView | None:
    with _reading(f"project {project_id}"):
        return await read_project_view(services.store, project_id)


# --- Pages -----------------------------------------------------------------------------------


async def overview_page(request: Request, services: Services) -> Response:
    try:
        overview = await _overview(services)
    except _ReadFailed as failure:
        return failure.page(request)
    return _page(
        request,
        "overview.html",
        overview=overview,
        now=overview.generated_at,
        refresh_url=f"{_base(request)}/api/overview",
    )


async def find_project(request: Request, services: Services) -> Response:
    """The overview's search: `?project_id=` a project id → its page; a job id → the page of
    the project holding it, or a list when several do."""
    try:
        wanted = UUID(request.query_params.get("project_id", "").strip())
    except ValueError:
        return _error_page(
            request, 400, "Not a project or job id", "A project or job id is a UUID."
        )
    try:
        with _reading(f"search {wanted}"):
            found = await find(services.store, wanted)
    except _ReadFailed as failure:
        return failure.page(request)
    if found.is_project or len(found.job_projects) == 1:
        project_id = wanted if found.is_project else found.job_projects[0]
        return RedirectResponse(f"{_base(request)}/projects/{project_id}", status_code=303)
    if not found.job_projects:
        return _error_page(request, 404, "Not found", f"No project or job {wanted}.")
    return _page(request, "found.html", job_id=str(wanted), projects=found.job_projects)


def _flash(request: Request) -> dict[str, int] | None:
    """What the last "check now" found, carried through the redirect in the query."""
    match = _FLASH.fullmatch(request.query_params.get("checked", ""))
    if match is None:
        return None
    completed, pending, failed, errors = (int(group) for group in match.groups())
    return {"completed": completed, "pending": pending, "failed": failed, "errors": errors}


async def project_page(request: Request, services: Services) -> Response:
    project_id = _project_id(request)
    if project_id is None:
        return _error_page(request, 400, "Not a project id", "A project id is a UUID.")
    try:
        project = await _project(services, project_id)
    except _ReadFailed as failure:
        return failure.page(request)
    if project is None:
        return _error_page(request, 404, "Project not found", f"No project {project_id}.")
    csrf = _csrf(services)
    cookie_nonce, new_cookie = csrf.cookie_nonce(request)
    response = _page(
        request,
        "project.html",
        project=project,
        now=datetime.now(UTC),
        flash=_flash(request),
        csrf_field=FIELD_NAME,
        csrf_token=csrf.form_token(cookie_nonce),
        refresh_url=f"{_base(request)}/api/projects/{project_id}",
    )
    if new_cookie:
        csrf.set_cookie(response, request, cookie_nonce)
    return response


async def _form_field(request: Request, name: str) -> str | None:
    body = await read_capped_body(request, MAX_FORM_BYTES)
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=8)
    except (UnicodeDecodeError, ValueError):
        return None
    values = fields.get(name)
    return values[0] if values else None


async def check_now(request: Request, services: Services) -> Response:
    """The check endpoint's effect for one project, then back to its page (POST/redirect/GET)."""
    try:
        submitted = await _form_field(request, FIELD_NAME)
    except BodyTooLarge:
        return _error_page(request, 413, "Form too large", "Nothing was changed.")
    try:
        _csrf(services).verify(request, submitted)
    except CsrfRejected as refusal:
        log.warning("admin check refused: %s", refusal)
        return _error_page(request, 403, "Refused", f"{refusal}. Nothing was changed.")
    project_id = _project_id(request)
    if project_id is None:
        return _error_page(request, 400, "Not a project id", "A project id is a UUID.")
    caller = ServiceCaller()
    limiter = services.service_check_rate_limit
    wait = limiter.try_acquire(caller.key) if limiter is not None else None
    if wait is not None:
        response = _error_page(request, 429, "Too many checks", "Slow down, then try again.")
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    try:
        body = await services.checker.check_for(caller, project_id)
    except ProjectNotFound:
        return _error_page(request, 404, "Project not found", f"No project {project_id}.")
    except StoreUnavailable as error:
        log.warning("admin check %s: database unavailable: %s", project_id, error)
        return _error_page(request, 503, "Database unavailable", "Nothing was checked.")
    except StoreRejected as error:
        log.error("admin check %s: database rejected the write: %s", project_id, error)
        return _error_page(request, 500, "Internal error", "The database refused the write.")
    errors = sum(1 for detail in body["details"] if detail.get("status") == "error")
    flash = f"{body['completed']}-{body['pending']}-{body['failed']}-{errors}"
    return RedirectResponse(
        f"{_base(request)}/projects/{project_id}?checked={flash}", status_code=303
    )


# --- JSON ------------------------------------------------------------------------------------


async def overview_json(request: Request, services: Services) -> Response:
    try:
        overview = await _overview(services)
    except _ReadFailed as failure:
        return failure.json()
    return JSONResponse(overview.as_json())


async def project_json(request: Request, services: Services) -> Response:
    project_id = _project_id(request)
    if project_id is None:
        return _json_error(400, "project id must be a UUID")
    try:
        project = await _project(services, project_id)
    except _ReadFailed as failure:
        return failure.json()
    if project is None:
        return _json_error(404, "project not found")
    return JSONResponse(project.as_json())


async def static_file(request: Request, services: Services) -> Response:
    name = str(request.path_params["name"])
    if name not in STATIC_FILES:
        return Response("Not found\n", status_code=404, media_type="text/plain")
    return Response(_STATIC[name], media_type=STATIC_FILES[name])


def admin_routes() -> list[BaseRoute]:
    return [
        Route("/admin", _guarded(overview_page), methods=["GET"]),
        Route("/admin/projects", _guarded(find_project), methods=["GET"]),
        Route("/admin/projects/{project_id}", _guarded(project_page), methods=["GET"]),
        Route("/admin/projects/{project_id}/check", _guarded(check_now), methods=["POST"]),
        Route("/admin/api/overview", _guarded(overview_json), methods=["GET"]),
        Route("/admin/api/projects/{project_id}", _guarded(project_json), methods=["GET"]),
        Route("/admin/static/{name}", _guarded(static_file), methods=["GET"]),
    ]
