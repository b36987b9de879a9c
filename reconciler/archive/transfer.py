"""Copy one finished video from Runware into Supabase Storage: streamed, bounded, resumable.

Skeleton: the interface the archive worker codes against; the bodies follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx

from reconciler.clips import UrlPolicy

# Supabase recommends TUS resumable uploads above about 6 MB; TUS chunks are 6 MiB.
DEFAULT_RESUMABLE_THRESHOLD = 6 * 1024 * 1024


class ArchiveFailure(Exception):
    """Why one archive attempt failed. `permanent` failures will not heal by retrying."""

    permanent: bool = False

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SourceGone(ArchiveFailure):
    """The video is no longer at its URL (404/410): Runware deleted it."""

    permanent = True


class TooLarge(ArchiveFailure):
    """The video exceeds our cap, or Storage refused its size (413)."""

    permanent = True


class NotAVideo(ArchiveFailure):
    """The URL answered with something that is not a video."""

    permanent = True


class TransferFailed(ArchiveFailure):
    """A transient failure: network, 5xx, a cut stream, or our own key rejected."""

    permanent = False


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size: int
    sha256: str
    content_type: str


async def download(
    client: httpx.AsyncClient, url: str, *, policy: UrlPolicy, max_bytes: int, into: Path
) -> Downloaded:
    """Stream `url` to a file and return what was stored.

    `into` is a directory (a fresh file is created inside it) or the path of the file to
    write. The caller removes the file. Raises an ArchiveFailure subclass on any failure."""
    raise NotImplementedError


class StorageUploader:
    def __init__(
        self,
        client: httpx.AsyncClient,
        supabase_url: str,
        service_role_key: str,
        *,
        resumable_threshold: int = DEFAULT_RESUMABLE_THRESHOLD,
    ) -> None:
        self._client = client
        self._base = supabase_url.rstrip("/") + "/storage/v1"
        self._key = service_role_key
        self._resumable_threshold = resumable_threshold

    async def check_bucket(self, bucket: str) -> None:
        raise NotImplementedError

    async def upload(self, bucket: str, object_path: str, source: Downloaded) -> None:
        raise NotImplementedError
