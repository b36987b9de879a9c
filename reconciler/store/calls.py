"""The catalogue of SQL functions the reconciler calls: each function's name, its arguments
and their types, written here once.

Both transports read it (the Postgres adapter builds `select public.fn(p_a => $1, …)`, the
Supabase adapter names the RPC and its arguments), `FunctionStore` binds its values through it
(`bind` refuses a missing or unknown argument), and the tests check it against `pg_proc`. The
SQL itself lives in `supabase/migrations/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# SQLSTATE classes that mean "this input cannot be stored", whichever transport carried it:
# data exceptions (22), our functions' own RAISE (P0) and program limits (54: e.g. a clip key too
# long for an index entry). Retrying them gives the same answer, so they are StoreRejected —
# skipped and recorded — not StoreUnavailable, which is retried as an outage.
REJECTED_SQLSTATE_CLASSES = ("22", "P0", "54")
# SQLSTATEs that mean "this call lost a race and was rolled back whole": deadlock detected and
# serialization failure. Every call is one statement in its own transaction, so running it again
# is safe; they are StoreConflict, which the store retries once (FunctionStore._call).
RETRIED_SQLSTATES = ("40P01", "40001")

# Every argument of ours is `p_<name>` in SQL, so that it never reads as a column name inside
# the function body; Python code names it without the prefix.
ARGUMENT_PREFIX = "p_"


@dataclass(frozen=True, slots=True)
class SqlFunction:
    name: str
    # (argument name as Python code says it, without the prefix; PostgreSQL type)
    arguments: tuple[tuple[str, str], ...]

    @property
    def argument_names(self) -> tuple[str, ...]:
        """The arguments' names in SQL, in declaration order."""
        return tuple(ARGUMENT_PREFIX + name for name, _ in self.arguments)

    @property
    def argument_types(self) -> tuple[str, ...]:
        return tuple(pg_type for _, pg_type in self.arguments)

    def bind(self, **values: Any) -> dict[str, Any]:
        """The call's arguments keyed by their SQL names; every catalogued argument exactly
        once, so a call that drifts from the catalogue fails at once, by name."""
        expected = [name for name, _ in self.arguments]
        if set(values) != set(expected):
            raise TypeError(
                f"{self.name} takes {', '.join(expected) or 'no arguments'};"
                f" got {', '.join(sorted(values)) or 'none'}"
            )
        return {ARGUMENT_PREFIX + name: values[name] for name in expected}


READ_PROJECT = SqlFunction(
    "reconciler_read_project",
    (
        ("project_id", "uuid"),
        ("first_check_delay_seconds", "double precision"),
        ("spread_seconds", "double precision"),
        ("track", "boolean"),
    ),
)
TRACK_JOBS = SqlFunction(
    "reconciler_track_jobs",
    (
        ("project_id", "uuid"),
        ("job_ids", "text[]"),
        ("first_check_delay_seconds", "double precision"),
    ),
)
APPLY_RESULTS = SqlFunction(
    "reconciler_apply_results", (("project_id", "uuid"), ("results", "jsonb"))
)
CALLER_CAN_SEE_PROJECT = SqlFunction("reconciler_caller_can_see_project", (("project_id", "uuid"),))
INGEST_RESULT = SqlFunction(
    "reconciler_ingest_result",
    (
        ("job_id", "text"),
        ("result", "text"),
        ("reason", "text"),
        ("first_check_delay_seconds", "double precision"),
    ),
)
NOTE_JOB_ERROR = SqlFunction("reconciler_note_job_error", (("job_id", "text"), ("error", "text")))
FAILURE_REASONS = SqlFunction(
    "reconciler_failure_reasons", (("project_id", "uuid"), ("job_ids", "text[]"))
)
CLAIM_DUE_JOBS = SqlFunction(
    "reconciler_claim_due_jobs",
    (
        ("owner", "text"),
        ("limit", "integer"),
        ("lease_seconds", "double precision"),
        ("per_project", "integer"),
    ),
)
FINISH_ROUND = SqlFunction("reconciler_finish_round", (("owner", "text"), ("outcomes", "jsonb")))
DRAIN_CHANGES = SqlFunction(
    "reconciler_drain_changes",
    (
        ("limit", "integer"),
        ("first_check_delay_seconds", "double precision"),
        ("spread_seconds", "double precision"),
    ),
)
RESYNC_PAGE = SqlFunction(
    "reconciler_resync_page",
    (
        ("after", "uuid"),
        ("limit", "integer"),
        ("first_check_delay_seconds", "double precision"),
        ("spread_seconds", "double precision"),
    ),
)
RENEW_LEASES = SqlFunction(
    "reconciler_renew_leases", (("owner", "text"), ("lease_seconds", "double precision"))
)
RELEASE_LEASES = SqlFunction("reconciler_release_leases", (("owner", "text"),))
PURGE = SqlFunction(
    "reconciler_purge", (("older_than_seconds", "double precision"), ("limit", "integer"))
)
MAKE_DUE_NOW = SqlFunction("reconciler_make_due_now", (("limit", "integer"),))
PROJECTS_WITH_PENDING = SqlFunction(
    "reconciler_projects_with_pending", (("after", "uuid"), ("limit", "integer"))
)
PENDING_STATS = SqlFunction("reconciler_pending_stats", ())
# Fair polls (supabase/migrations/20261208000000_clip_reconciler_fair_polls.sql).
SET_TRACKING_LIMITS = SqlFunction(
    "reconciler_set_tracking_limits", (("max_pending_per_project", "integer"),)
)

# The operator's view (supabase/migrations/20261202200000_clip_reconciler_operator.sql).
RECORD_HEARTBEAT = SqlFunction(
    "reconciler_record_heartbeat",
    (
        ("owner", "text"),
        ("version", "text"),
        ("started_at", "timestamp with time zone"),
        ("heartbeat_seconds", "double precision"),
        ("feed_state", "text"),
        ("leases_held", "integer"),
        ("last_sweep_at", "timestamp with time zone"),
    ),
)
FORGET_REPLICA = SqlFunction("reconciler_forget_replica", (("owner", "text"),))
# reconciler_finish_round plus Runware's progress per job still working, in the same call.
FINISH_POLL_ROUND = SqlFunction(
    "reconciler_finish_poll_round", (("owner", "text"), ("outcomes", "jsonb"))
)
OPERATOR_OVERVIEW = SqlFunction("reconciler_operator_overview", (("oldest_limit", "integer"),))
OPERATOR_PROJECT = SqlFunction("reconciler_operator_project", (("project_id", "uuid"),))
# The admin search (20261208070000_clip_reconciler_operator_truth.sql).
OPERATOR_FIND = SqlFunction("reconciler_operator_find", (("id", "uuid"),))


# --- Archiving (20261202100000_clip_reconciler_archive.sql) ---
SET_ARCHIVING = SqlFunction("reconciler_set_archiving", (("enabled", "boolean"),))
CLAIM_ARCHIVE_TASKS = SqlFunction(
    "reconciler_claim_archive_tasks",
    (
        ("owner", "text"),
        ("limit", "integer"),
        ("lease_seconds", "double precision"),
        ("max_attempts", "integer"),
    ),
)
RENEW_ARCHIVE_LEASES = SqlFunction(
    "reconciler_renew_archive_leases",
    (("owner", "text"), ("lease_seconds", "double precision")),
)
RELEASE_ARCHIVE_LEASES = SqlFunction("reconciler_release_archive_leases", (("owner", "text"),))
ARCHIVE_SUCCEEDED = SqlFunction(
    "reconciler_archive_succeeded",
    (
        ("project_id", "uuid"),
        ("job_id", "text"),
        ("source_url", "text"),
        ("archived_url", "text"),
        ("object_path", "text"),
        ("size_bytes", "bigint"),
        ("sha256", "text"),
    ),
)
ARCHIVE_FAILED = SqlFunction(
    "reconciler_archive_failed",
    (
        ("project_id", "uuid"),
        ("job_id", "text"),
        ("source_url", "text"),
        ("error", "text"),
        ("permanent", "boolean"),
        ("retry_in_seconds", "double precision"),
        ("max_attempts", "integer"),
    ),
)
ARCHIVE_BACKFILL_PAGE = SqlFunction(
    "reconciler_archive_backfill_page",
    (
        ("after", "uuid"),
        ("limit", "integer"),
        ("source_prefixes", "text[]"),
        ("archived_prefix", "text"),
    ),
)
ARCHIVE_STATS = SqlFunction("reconciler_archive_stats", (("by_state", "boolean"),))
# The archive state of one project's clips (20261202300000_clip_reconciler_operator_archive.sql).
PROJECT_ARCHIVE_STATES = SqlFunction("reconciler_project_archive_states", (("project_id", "uuid"),))
# Finished archive rows past retention, a batch per call
# (20261208030000_clip_reconciler_archive_once.sql).
PURGE_ARCHIVE = SqlFunction(
    "reconciler_purge_archive", (("older_than_seconds", "double precision"), ("limit", "integer"))
)

# Every function of ours in `public` but the trigger's: what the service calls (FINISH_ROUND
# through FINISH_POLL_ROUND, in SQL).
# The check endpoint's lean read and write (20261208020000): a bounded part of a project.
READ_FOR_CHECK = SqlFunction(
    "reconciler_read_for_check",
    (
        ("project_id", "uuid"),
        ("first_check_delay_seconds", "double precision"),
        ("max_jobs", "integer"),
        ("max_clips_bytes", "integer"),
    ),
)
APPLY_CHECK_RESULTS = SqlFunction(
    "reconciler_apply_check_results",
    (
        ("project_id", "uuid"),
        ("results", "jsonb"),
        ("keys", "text[]"),
        ("max_clips_bytes", "integer"),
    ),
)

CATALOGUE: tuple[SqlFunction, ...] = (
    READ_PROJECT,
    TRACK_JOBS,
    APPLY_RESULTS,
    CALLER_CAN_SEE_PROJECT,
    INGEST_RESULT,
    NOTE_JOB_ERROR,
    FAILURE_REASONS,
    CLAIM_DUE_JOBS,
    FINISH_ROUND,
    DRAIN_CHANGES,
    RESYNC_PAGE,
    RENEW_LEASES,
    RELEASE_LEASES,
    PURGE,
    MAKE_DUE_NOW,
    PROJECTS_WITH_PENDING,
    PENDING_STATS,
    SET_TRACKING_LIMITS,
    RECORD_HEARTBEAT,
    FORGET_REPLICA,
    FINISH_POLL_ROUND,
    OPERATOR_OVERVIEW,
    OPERATOR_PROJECT,
    OPERATOR_FIND,
    SET_ARCHIVING,
    CLAIM_ARCHIVE_TASKS,
    RENEW_ARCHIVE_LEASES,
    RELEASE_ARCHIVE_LEASES,
    ARCHIVE_SUCCEEDED,
    ARCHIVE_FAILED,
    ARCHIVE_BACKFILL_PAGE,
    ARCHIVE_STATS,
    PROJECT_ARCHIVE_STATES,
    PURGE_ARCHIVE,
    READ_FOR_CHECK,
    APPLY_CHECK_RESULTS,
)
