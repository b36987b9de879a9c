"""Archiving is off by default; turned on, its settings are checked at start-up and a bad one
stops it with one line naming the setting."""

from __future__ import annotations

import pytest

from reconciler.config import ConfigError, load_settings

BASE = {
    "DATABASE_URL": "postgresql://u@127.0.0.1:5432/db",
    "RECONCILER_ADMIN_TOKEN": "an-admin-token-of-32-characters-at-least",
    "RUNWARE_API_KEY": "k",
    "RECONCILER_INSECURE_WEBHOOKS": "1",
}
ON = BASE | {
    "RECONCILER_ARCHIVE": "supabase",
    "SUPABASE_URL": "https://x.supabase.co",
    "SUPABASE_SERVICE_ROLE_KEY": "a-service-role-key-of-32-characters-at-least",
    "RECONCILER_ARCHIVE_BUCKET": "videos",
}


def test_off_by_default() -> None:
    assert not load_settings(BASE).archive.enabled


def test_on_with_defaults_on_the_postgres_transport() -> None:
    settings = load_settings(ON)

    assert settings.transport == "postgres"
    archive = settings.archive
    assert (archive.enabled, archive.bucket) == (True, "videos")
    assert archive.path.template == "{project_id}/{job_id}.mp4"
    assert (archive.max_bytes, archive.concurrency) == (2 * 1024**3, 2)


def test_knobs_are_read() -> None:
    settings = load_settings(
        ON
        | {
            "RECONCILER_ARCHIVE_PATH": "clips/{project_id}/{job_id}.mp4",
            "RECONCILER_ARCHIVE_MAX_BYTES": "1000",
            "RECONCILER_ARCHIVE_CONCURRENCY": "5",
        }
    )

    assert settings.archive.path.template == "clips/{project_id}/{job_id}.mp4"
    assert (settings.archive.max_bytes, settings.archive.concurrency) == (1000, 5)


@pytest.mark.parametrize(
    ("changes", "name", "complaint"),
    [
        ({"RECONCILER_ARCHIVE": "s3"}, "RECONCILER_ARCHIVE", "expected off or supabase"),
        ({"RECONCILER_ARCHIVE_BUCKET": ""}, "RECONCILER_ARCHIVE_BUCKET", "is required"),
        ({"RECONCILER_ARCHIVE_BUCKET": "a/b"}, "RECONCILER_ARCHIVE_BUCKET", "not a bucket"),
        ({"SUPABASE_URL": ""}, "SUPABASE_URL", "is required with RECONCILER_ARCHIVE"),
        ({"SUPABASE_SERVICE_ROLE_KEY": ""}, "SUPABASE_SERVICE_ROLE_KEY", "is required"),
        (
            {"RECONCILER_ARCHIVE_PATH": "{project}/{job_id}.mp4"},
            "RECONCILER_ARCHIVE_PATH",
            "unknown placeholder {project}",
        ),
        (
            {"RECONCILER_ARCHIVE_PATH": "../{project_id}/{job_id}"},
            "RECONCILER_ARCHIVE_PATH",
            "'..'",
        ),
        (
            {"RECONCILER_ARCHIVE_PATH": "{job_id}.mp4"},
            "RECONCILER_ARCHIVE_PATH",
            "must contain {project_id}",
        ),
        ({"RECONCILER_ARCHIVE_MAX_BYTES": "0"}, "RECONCILER_ARCHIVE_MAX_BYTES", "whole number ≥ 1"),
        ({"RECONCILER_ARCHIVE_CONCURRENCY": "two"}, "RECONCILER_ARCHIVE_CONCURRENCY", "whole"),
        ({"RECONCILER_ARCHIVE_MAX_ATTEMPTS": "0"}, "RECONCILER_ARCHIVE_MAX_ATTEMPTS", "≥ 1"),
        (
            {"RECONCILER_ARCHIVE_LEASE_SECONDS": "0.5"},
            "RECONCILER_ARCHIVE_LEASE_SECONDS",
            "seconds ≥ 1",
        ),
        (
            {"RECONCILER_ARCHIVE_RETRY_BASE_SECONDS": "x"},
            "RECONCILER_ARCHIVE_RETRY_BASE_SECONDS",
            "seconds",
        ),
    ],
)
def test_bad_archive_settings_name_the_setting(
    changes: dict[str, str], name: str, complaint: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(ON | changes)

    assert caught.value.name == name
    assert complaint in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_bad_path_is_refused_even_with_archiving_off() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(BASE | {"RECONCILER_ARCHIVE_PATH": "/{project_id}/{job_id}"})

    assert caught.value.name == "RECONCILER_ARCHIVE_PATH"
