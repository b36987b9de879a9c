"""The catalogue of SQL functions the reconciler calls: names, parameters and their types.

Both transports read this one table: the Postgres adapter to build `select public.fn(p => $1)`,
the Supabase adapter to name the RPC and its arguments. The SQL itself lives in
`supabase/migrations/`.
"""

from __future__ import annotations

from dataclasses import dataclass

# SQLSTATE classes that mean "this input cannot be stored", whichever transport carried it:
# data exceptions (22), our functions' own RAISE (P0) and program limits (54: e.g. a clip key too
# long for an index entry). Retrying them gives the same answer, so they are StoreRejected —
# skipped and recorded — not StoreUnavailable, which is retried as an outage.
REJECTED_SQLSTATE_CLASSES = ("22", "P0", "54")


@dataclass(frozen=True, slots=True)
class SqlFunction:
    name: str
    params: tuple[tuple[str, str], ...]  # (argument name, PostgreSQL type)

    @property
    def argument_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.params)


READ_PROJECT = SqlFunction(
    "reconciler_read_project",
    (
        ("p_project_id", "uuid"),
        ("p_first_check_delay_seconds", "double precision"),
        ("p_spread_seconds", "double precision"),
        ("p_track", "boolean"),
    ),
)
TRACK_JOBS = SqlFunction(
    "reconciler_track_jobs",
    (
        ("p_project_id", "uuid"),
        ("p_job_ids", "text[]"),
        ("p_first_check_delay_seconds", "double precision"),
    ),
)
APPLY_RESULTS = SqlFunction(
    "reconciler_apply_results", (("p_project_id", "uuid"), ("p_results", "jsonb"))
)
CALLER_CAN_SEE_PROJECT = SqlFunction(
    "reconciler_caller_can_see_project", (("p_project_id", "uuid"),)
)
INGEST_RESULT = SqlFunction(
    "reconciler_ingest_result",
    (
        ("p_job_id", "text"),
        ("p_result", "text"),
        ("p_reason", "text"),
        ("p_first_check_delay_seconds", "double precision"),
    ),
)
NOTE_JOB_ERROR = SqlFunction(
    "reconciler_note_job_error", (("p_job_id", "text"), ("p_error", "text"))
)
CLAIM_DUE_JOBS = SqlFunction(
    "reconciler_claim_due_jobs",
    (("p_owner", "text"), ("p_limit", "integer"), ("p_lease_seconds", "double precision")),
)
FINISH_ROUND = SqlFunction(
    "reconciler_finish_round", (("p_owner", "text"), ("p_outcomes", "jsonb"))
)
DRAIN_CHANGES = SqlFunction(
    "reconciler_drain_changes",
    (
        ("p_limit", "integer"),
        ("p_first_check_delay_seconds", "double precision"),
        ("p_spread_seconds", "double precision"),
    ),
)
RESYNC_PAGE = SqlFunction(
    "reconciler_resync_page",
    (
        ("p_after", "uuid"),
        ("p_limit", "integer"),
        ("p_first_check_delay_seconds", "double precision"),
        ("p_spread_seconds", "double precision"),
    ),
)
RENEW_LEASES = SqlFunction(
    "reconciler_renew_leases", (("p_owner", "text"), ("p_lease_seconds", "double precision"))
)
RELEASE_LEASES = SqlFunction("reconciler_release_leases", (("p_owner", "text"),))
JOB_STATES = SqlFunction("reconciler_job_states", (("p_job_ids", "text[]"),))
PURGE = SqlFunction(
    "reconciler_purge", (("p_older_than_seconds", "double precision"), ("p_limit", "integer"))
)
PROJECTS_WITH_PENDING = SqlFunction(
    "reconciler_projects_with_pending", (("p_after", "uuid"), ("p_limit", "integer"))
)
PENDING_STATS = SqlFunction("reconciler_pending_stats", ())

# --- Archiving (20261202100000_clip_reconciler_archive.sql) ---------------------------------------
SET_ARCHIVING = SqlFunction("reconciler_set_archiving", (("p_enabled", "boolean"),))
CLAIM_ARCHIVE_TASKS = SqlFunction(
    "reconciler_claim_archive_tasks",
    (
        ("p_owner", "text"),
        ("p_limit", "integer"),
        ("p_lease_seconds", "double precision"),
        ("p_max_attempts", "integer"),
    ),
)
RENEW_ARCHIVE_LEASES = SqlFunction(
    "reconciler_renew_archive_leases",
    (("p_owner", "text"), ("p_lease_seconds", "double precision")),
)
RELEASE_ARCHIVE_LEASES = SqlFunction("reconciler_release_archive_leases", (("p_owner", "text"),))
ARCHIVE_SUCCEEDED = SqlFunction(
    "reconciler_archive_succeeded",
    (
        ("p_project_id", "uuid"),
        ("p_job_id", "text"),
        ("p_source_url", "text"),
        ("p_archived_url", "text"),
        ("p_object_path", "text"),
        ("p_size_bytes", "bigint"),
        ("p_sha256", "text"),
    ),
)
ARCHIVE_FAILED = SqlFunction(
    "reconciler_archive_failed",
    (
        ("p_project_id", "uuid"),
        ("p_job_id", "text"),
        ("p_source_url", "text"),
        ("p_error", "text"),
        ("p_permanent", "boolean"),
        ("p_retry_in_seconds", "double precision"),
        ("p_max_attempts", "integer"),
    ),
)
ARCHIVE_BACKFILL_PAGE = SqlFunction(
    "reconciler_archive_backfill_page",
    (("p_after", "uuid"), ("p_limit", "integer"), ("p_archived_prefix", "text")),
)
ARCHIVE_STATS = SqlFunction("reconciler_archive_stats", (("p_by_state", "boolean"),))
