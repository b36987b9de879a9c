"""Job ids for tests. Runware task ids are UUIDs, and a clip key that is not one is never
tracked (reconciler.clips.is_trackable), so a test's jobs must be UUIDs. `J.j1` is the UUID
named "j1": the same in every test and every run, so a test still reads by its jobs' names.
`J.named(f"p{i}")` does the same for a name built at run time."""

from __future__ import annotations

from typing import Final
from uuid import UUID, uuid5

_NAMESPACE = UUID("5d2f9a0e-7c1b-4e8a-9f3d-2b6c1a8e4f70")


class _NamedJobIds:
    def named(self, name: str) -> str:
        # `J.job_1` and `J.named("job-1")` are one job: a Python name cannot hold a hyphen.
        return str(uuid5(_NAMESPACE, name.replace("-", "_")))

    def __getattr__(self, name: str) -> str:
        if name.startswith("__"):
            raise AttributeError(name)
        return self.named(name)


J: Final = _NamedJobIds()
