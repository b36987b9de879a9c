"""clip-reconciler: keeps Supabase `projects.clips` in step with Runware video jobs."""

from importlib import metadata


def service_version() -> str:
    """The installed package's version (pyproject.toml is the only place it is written)."""
    try:
        return metadata.version("clip-reconciler")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "unknown"
