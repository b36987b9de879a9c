"""Webhook bodies in every shape Runware may send (docs/runware-api.md, "Webhooks")."""

from __future__ import annotations

from typing import Any


def video_url(name: str) -> str:
    return f"https://vm.runware.ai/video/os/a1b2/ws/2/vi/{name}.mp4"


def flat_success(task: str, url: str, video_uuid: str = "v1") -> dict[str, Any]:
    return {
        "taskType": "videoInference",
        "taskUUID": task,
        "status": "success",
        "videoUUID": video_uuid,
        "videoURL": url,
        "cost": 0.11,
        "seed": 42,
    }


def wrapped_success(task: str, url: str) -> dict[str, Any]:
    return {"data": [flat_success(task, url)]}


def flat_failure(task: str, code: str = "timeoutProvider") -> dict[str, Any]:
    return {"taskUUID": task, "status": "error", "code": code, "message": "provider timed out"}


def errors_failure(task: str, code: str = "timeoutProvider") -> dict[str, Any]:
    return {"errors": [{"taskUUID": task, "code": code, "status": "error", "message": "boom"}]}


def singular_error_failure(task: str) -> dict[str, Any]:
    return {"error": {"taskUUID": task, "code": "providerContentPolicyViolation", "message": "no"}}


def nested_error_failure(task: str) -> dict[str, Any]:
    return {
        "data": [
            {
                "taskType": "videoInference",
                "taskUUID": task,
                "status": "error",
                "error": {"code": "timeoutProvider", "message": "too slow"},
            }
        ]
    }
