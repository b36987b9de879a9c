"""Object path templates are checked at start-up; rendered paths and public URLs are safe."""

from __future__ import annotations

from uuid import UUID

import pytest

from reconciler.archive.paths import (
    DEFAULT_PATH_TEMPLATE,
    ObjectPathError,
    ObjectPathTemplate,
    check_bucket_name,
    public_base_url,
    public_object_url,
    source_prefixes,
)
from reconciler.clips import parse_allowed_origin

PROJECT = UUID("00000000-0000-4000-8000-00000000000a")


def test_default_template_renders_project_and_job() -> None:
    template = ObjectPathTemplate.parse(DEFAULT_PATH_TEMPLATE)

    assert template.render(PROJECT, "job-1") == f"{PROJECT}/job-1.mp4"


def test_a_template_may_use_fixed_folders_and_any_order() -> None:
    template = ObjectPathTemplate.parse("videos/{job_id}-{project_id}.mp4")

    assert template.render(PROJECT, "j") == f"videos/j-{PROJECT}.mp4"


@pytest.mark.parametrize("template", ["{job_id}.mp4", "videos/{job_id}.mp4", "{job_id}"])
def test_a_template_without_the_project_is_refused(template: str) -> None:
    """Two projects holding the same job id would share one object: either could overwrite
    the other's video (uploads are upserts)."""
    with pytest.raises(ObjectPathError) as caught:
        ObjectPathTemplate.parse(template)

    assert "must contain {project_id}" in str(caught.value)
    assert "another project's object" in str(caught.value)


@pytest.mark.parametrize(
    ("template", "complaint"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("{project_id}/{name}.mp4", "unknown placeholder {name}"),
        ("{job_id!r}.mp4", "unknown placeholder {job_id!r}"),
        ("{job_id:>10}.mp4", "unknown placeholder {job_id:>10}"),
        ("{}.mp4", "unknown placeholder {}"),
        ("{0}.mp4", "unknown placeholder {0}"),
        ("{project_id}.mp4", "must contain {job_id}"),
        ("{job_id", "unbalanced braces"),
        ("/{project_id}/{job_id}.mp4", "must not start with '/'"),
        ("../{project_id}/{job_id}.mp4", "'..'"),
        ("a//{project_id}/{job_id}.mp4", "empty"),
        ("a/./{project_id}/{job_id}", "'.'"),
        ("a\\{project_id}/{job_id}", "control characters"),
    ],
)
def test_bad_templates_are_refused_with_a_reason(template: str, complaint: str) -> None:
    with pytest.raises(ObjectPathError) as caught:
        ObjectPathTemplate.parse(template)
    assert complaint in str(caught.value)


@pytest.mark.parametrize("job_id", ["..", "a/../b", "/abs", "a\nb", "a\\b", ""])
def test_job_ids_that_would_escape_the_path_are_refused(job_id: str) -> None:
    template = ObjectPathTemplate.parse(DEFAULT_PATH_TEMPLATE.replace(".mp4", ""))

    with pytest.raises(ObjectPathError):
        template.render(PROJECT, job_id)


def test_overlong_paths_are_refused() -> None:
    with pytest.raises(ObjectPathError, match="longer than"):
        ObjectPathTemplate.parse(DEFAULT_PATH_TEMPLATE).render(PROJECT, "x" * 1100)


def test_public_url_encodes_each_segment_and_keeps_slashes() -> None:
    url = public_object_url("https://abc.supabase.co/", "my videos", f"{PROJECT}/a b#c.mp4")

    assert url == (
        f"https://abc.supabase.co/storage/v1/object/public/my%20videos/{PROJECT}/a%20b%23c.mp4"
    )
    assert url.startswith(public_base_url("https://abc.supabase.co", "my videos"))


@pytest.mark.parametrize("bucket", ["", " videos", "a/b", "..", "."])
def test_bad_bucket_names_are_refused(bucket: str) -> None:
    with pytest.raises(ObjectPathError):
        check_bucket_name(bucket)


def test_good_bucket_name_passes() -> None:
    assert check_bucket_name("videos-archive") == "videos-archive"


def test_source_prefixes_name_each_allowed_origin() -> None:
    origins = [
        parse_allowed_origin(entry)
        for entry in ("vm.runware.ai", "http://127.0.0.1:8100", "https://im.runware.ai:8443")
    ]

    assert source_prefixes(origins) == [
        "http://127.0.0.1:8100/",
        "https://im.runware.ai:8443/",
        "https://vm.runware.ai/",
    ]
