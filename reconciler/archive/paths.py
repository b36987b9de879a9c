"""Where an archived video goes in its bucket, and the URL the clip then holds. Pure: no I/O.

The object path comes from a template (`RECONCILER_ARCHIVE_PATH`, default
`{project_id}/{job_id}.mp4`) checked once at start-up, so a typo stops the service with one
line instead of failing every upload; a rendered path is checked again, because a clip key is
the app's data and could carry `..` or a `/` of its own. The template must name both the
project and the job: job ids are the app's data, so without `{project_id}` one project could
write a clip key that lands on another project's object (and overwrite it, uploads being
upserts). With both, the rendered path is one-to-one: a project id is a UUID, always 36
characters, so where it ends and the job id starts is never ambiguous.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote
from uuid import UUID

from reconciler.clips import AllowedOrigin

DEFAULT_PATH_TEMPLATE = "{project_id}/{job_id}.mp4"
PLACEHOLDERS = ("project_id", "job_id")
# Object names are limited to 1024 bytes by Storage; anything near that is a mistake.
MAX_PATH_BYTES = 1024


class ObjectPathError(ValueError):
    """A template or a rendered path that cannot name an object safely."""


def _check_segments(path: str, what: str) -> None:
    if path.startswith("/"):
        raise ObjectPathError(f"{what} must not start with '/', got {path!r}")
    if "\\" in path or any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise ObjectPathError(f"{what} must not contain '\\' or control characters")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise ObjectPathError(f"{what} must not contain empty, '.' or '..' segments: {path!r}")


@dataclass(frozen=True)
class ObjectPathTemplate:
    """A validated object path template with the placeholders {project_id} and {job_id}."""

    template: str

    @classmethod
    def parse(cls, template: str) -> ObjectPathTemplate:
        if not template.strip():
            raise ObjectPathError("the object path template is empty")
        try:
            fields = list(string.Formatter().parse(template))
        except ValueError as error:
            raise ObjectPathError(f"unbalanced braces in {template!r}: {error}") from None
        named: set[str] = set()
        for _, name, spec, conversion in fields:
            if name is None:
                continue
            if name not in PLACEHOLDERS or spec or conversion:
                allowed = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
                raise ObjectPathError(
                    f"unknown placeholder {{{name}{'!' + conversion if conversion else ''}"
                    f"{':' + spec if spec else ''}}} in {template!r} (allowed: {allowed})"
                )
            named.add(name)
        if "job_id" not in named:
            # Without it every video of a project would land on one object.
            raise ObjectPathError(f"the template must contain {{job_id}}, got {template!r}")
        if "project_id" not in named:
            # Without it two projects holding the same job id share one object, and either
            # one's clip overwrites the other's video.
            raise ObjectPathError(
                f"the template must contain {{project_id}}, got {template!r}: without it one"
                " project's clip could overwrite another project's object"
            )
        # The literal parts must be safe whatever the placeholders hold.
        _check_segments(template.format(project_id="p", job_id="j"), "the object path template")
        return cls(template)

    def render(self, project_id: UUID, job_id: str) -> str:
        """The object path for one clip; ObjectPathError if the job id cannot be used in one."""
        path = self.template.format(project_id=str(project_id), job_id=job_id)
        _check_segments(path, "the object path")
        if len(path.encode()) > MAX_PATH_BYTES:
            raise ObjectPathError(f"the object path is longer than {MAX_PATH_BYTES} bytes")
        return path


def public_base_url(supabase_url: str, bucket: str) -> str:
    """Every archived URL of this bucket starts with this (the back-fill skips those)."""
    return f"{supabase_url.rstrip('/')}/storage/v1/object/public/{quote(bucket, safe='')}/"


def public_object_url(supabase_url: str, bucket: str, object_path: str) -> str:
    """`{SUPABASE_URL}/storage/v1/object/public/{bucket}/{path}`, each segment URL-encoded."""
    return public_base_url(supabase_url, bucket) + quote(object_path, safe="/")


def check_bucket_name(bucket: str) -> str:
    """A bucket name usable in a URL path segment; raises ObjectPathError otherwise."""
    if not bucket or bucket != bucket.strip() or "/" in bucket or bucket in (".", ".."):
        raise ObjectPathError(f"not a bucket name: {bucket!r}")
    return bucket


_DEFAULT_PORTS = {"http": 80, "https": 443}


def source_prefixes(origins: Iterable[AllowedOrigin]) -> list[str]:
    """`scheme://host/` (with `:port` when not the scheme's default) for each allowed origin,
    lower case, sorted: what a Runware URL the back-fill may queue starts with."""
    prefixes = set()
    for origin in origins:
        default = _DEFAULT_PORTS.get(origin.scheme) == origin.port
        port = "" if default else f":{origin.port}"
        prefixes.add(f"{origin.scheme}://{origin.host}{port}/".lower())
    return sorted(prefixes)
