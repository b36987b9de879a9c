"""Pure domain logic: what a pending clip becomes for each Runware status, and the seed's
response shape. No I/O."""

from __future__ import annotations

import pytest

from reconciler.clips import (
    FAILED,
    NO_ANSWER,
    CheckError,
    Decision,
    Failed,
    Processing,
    Succeeded,
    UnknownTask,
    UrlPolicy,
    check_response,
    decide,
    decide_pending_job,
    status_from_error,
)
from reconciler.schedule import PollPolicy
from tests.job_ids import J

POLICY = UrlPolicy()
URL = "https://vm.runware.ai/video/os/x/ws/2/vi/v.mp4"


def _decide(status: object, age: float = 0.0) -> Decision:
    return decide(
        "job",
        status,  # type: ignore[arg-type]
        job_age_seconds=age,
        unknown_task_grace_seconds=600,
        url_policy=POLICY,
    )


def test_success_writes_the_url() -> None:
    assert _decide(Succeeded(URL, "v")) == Decision("job", URL)


def test_failure_writes_failed_with_the_reason() -> None:
    decision = _decide(Failed("timeoutProvider", "too slow"))
    assert decision.write == FAILED
    assert decision.error == "timeoutProvider: too slow"


def test_unknown_task_fails_only_after_the_grace_period() -> None:
    young = _decide(UnknownTask("taskNotFound", "gone"), age=599)
    old = _decide(UnknownTask("taskExpired", "gone"), age=600)
    assert young.write is None
    assert "grace" in (young.error or "")
    assert old.write == FAILED


def test_processing_and_check_errors_leave_the_clip_pending() -> None:
    assert _decide(Processing(40)) == Decision("job", None)
    error = _decide(CheckError("Runware unreachable"))
    assert (error.write, error.check_failed) == (None, True)


@pytest.mark.parametrize(
    "url",
    [
        "http://vm.runware.ai/v.mp4",
        "https://example.com/v.mp4",
        "https://vm.runware.ai.example.com/v.mp4",
        "https://user@evil.com/vm.runware.ai/v.mp4",
        "ftp://vm.runware.ai/v.mp4",
        "https:///nohost",
        "https://[::1/v.mp4",
    ],
)
def test_urls_outside_the_allow_list_are_not_written(url: str) -> None:
    decision = _decide(Succeeded(url))
    assert decision.write is None
    assert decision.check_failed


def test_allow_list_is_configurable_and_case_insensitive() -> None:
    policy = UrlPolicy.from_entries(["cdn.example.org"])
    assert policy.rejects("https://CDN.example.org/v.mp4") is None
    assert policy.rejects(URL) is not None


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("taskNotFound", UnknownTask),
        ("taskExpired", UnknownTask),
        ("taskFailedOrNotFound", UnknownTask),
        ("timeoutProvider", Failed),
        (None, Failed),
        # About our request, not the video: never a reason to fail a clip (I11).
        ("rateLimitExceeded", CheckError),
        ("insufficientCredits", CheckError),
        ("invalidApiKey", CheckError),
    ],
)
def test_error_codes_are_classified(code: str | None, kind: type) -> None:
    assert isinstance(status_from_error(code, None), kind)


def test_seed_response_counts_and_details() -> None:
    clips = {
        "done": URL,
        "old": FAILED,
        "new": URL,
        "bad": FAILED,
        "slow": "pending",
        "err": "pending",
    }
    decisions = [
        Decision("new", URL),
        Decision("bad", FAILED, "timeoutProvider: x"),
        Decision("slow", None),
        Decision("err", None, "Runware unreachable", check_failed=True),
    ]

    body = check_response("p", clips, decisions)

    assert (body["total_clips"], body["completed"], body["pending"], body["failed"]) == (6, 2, 2, 2)
    details = {d["jobId"]: d for d in body["details"]}
    assert details["done"] == {
        "jobId": "done",
        "status": "completed",
        "videoUrl": URL,
        "alreadyProcessed": True,
    }
    assert details["old"]["alreadyProcessed"] is True
    assert details["new"] == {
        "jobId": "new",
        "status": "completed",
        "videoUrl": URL,
        "alreadyProcessed": False,
    }
    assert details["bad"]["status"] == "failed"
    assert details["slow"]["status"] == "pending"
    assert details["err"] == {
        "jobId": "err",
        "status": "error",
        "videoUrl": None,
        "alreadyProcessed": False,
        "error": "Runware unreachable",
    }
    assert [d["jobId"] for d in body["details"]] == list(clips)


# --- The one per-job decision the manual check and the poller share -------------------------

GIVE_UP = PollPolicy(give_up_after_seconds=3600)


def _decide_pending(
    answers: dict[str, object], age: float, give_up: PollPolicy | None = GIVE_UP
) -> Decision:
    return decide_pending_job(
        J.job,
        answers,  # type: ignore[arg-type]
        job_age_seconds=age,
        unknown_task_grace_seconds=600,
        url_policy=POLICY,
        give_up=give_up,
    )


def test_a_job_missing_from_the_answer_is_a_failed_check_that_never_gives_up() -> None:
    decision = _decide_pending({}, age=99_999)
    assert decision == Decision(J.job, None, NO_ANSWER, check_failed=True)


@pytest.mark.parametrize(
    "status",
    [CheckError("Runware unreachable"), Succeeded("https://evil.example/v.mp4")],
)
def test_our_own_failures_never_fail_a_clip_past_the_give_up_age(status: object) -> None:
    decision = _decide_pending({J.job: status}, age=99_999)
    assert (decision.write, decision.check_failed, decision.gave_up) == (None, True, False)


def test_runware_still_working_past_the_give_up_age_fails_the_clip() -> None:
    young = _decide_pending({J.job: Processing(10)}, age=3599)
    old = _decide_pending({J.job: Processing(10)}, age=3600)
    assert (young.write, young.gave_up) == (None, False)
    assert (old.write, old.gave_up, old.check_failed) == (FAILED, True, False)
    assert (old.error or "").startswith("gave up after 3600 s without a result")


def test_without_a_give_up_policy_a_clip_stays_pending_at_any_age() -> None:
    decision = _decide_pending({J.job: Processing(10)}, age=99_999, give_up=None)
    assert decision == Decision(J.job, None)


@pytest.mark.parametrize("key", ["k" * 256, "job-1", J.job.replace("-", "")])
def test_a_key_that_is_not_a_task_id_is_reported_not_decided(key: str) -> None:
    decision = decide_pending_job(
        key, {}, job_age_seconds=0, unknown_task_grace_seconds=600, url_policy=POLICY
    )
    assert (decision.write, decision.check_failed) == (None, True)
    assert decision.error == "job id is not a Runware task id (a UUID); it is not tracked"
