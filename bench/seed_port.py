"""A faithful port of the seed edge function `check-clips-status`, as the baseline.

The algorithm, step for step as the seed ran it:
1. read the project row;
2. for each clip still `"pending"`, one `getResponse` request for that job alone, in sequence,
   waiting for each answer before sending the next;
3. if anything changed, write the whole clips map back (`update projects set clips = …`), one
   write; otherwise write nothing;
4. answer with the seed's response body.

The seed ran in Deno with supabase-js and `fetch`; here asyncpg and httpx stand in for them,
both kept warm between calls (pooled connections), which favours the seed, not us.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import asyncpg
import httpx


class SeedRunware:
    """The seed's one-job-per-request status call."""

    def __init__(self, http: httpx.AsyncClient, api_url: str, api_key: str) -> None:
        self._http = http
        self._api_url = api_url
        self._headers = {"Authorization": f"Bearer {api_key}"}

    async def status(self, job_id: str) -> tuple[str, str | None, str | None]:
        """(status, video URL, error): status is completed, failed, pending or error."""
        try:
            response = await self._http.post(
                self._api_url,
                json=[{"taskType": "getResponse", "taskUUID": job_id}],
                headers=self._headers,
            )
            body = response.json()
        except (httpx.HTTPError, ValueError) as error:
            return "error", None, f"{type(error).__name__}: {error}"
        if not isinstance(body, dict):
            return "error", None, "unexpected answer"
        for item in body.get("errors") or []:
            if isinstance(item, dict) and item.get("taskUUID") == job_id:
                return "failed", None, str(item.get("message") or item.get("code"))
        for item in body.get("data") or []:
            if not isinstance(item, dict) or item.get("taskUUID") != job_id:
                continue
            status = item.get("status")
            if status == "success" and isinstance(item.get("videoURL"), str):
                return "completed", item["videoURL"], None
            if status == "error":
                return "failed", None, json.dumps(item.get("error"))
            return "pending", None, None
        if response.status_code >= 300:
            return "error", None, f"HTTP {response.status_code}"
        return "pending", None, None


async def seed_check(db: asyncpg.Pool, runware: SeedRunware, project_id: UUID) -> dict[str, Any]:
    """The seed's response for one project (the same JSON shape as our check endpoint)."""
    row = await db.fetchrow("select id, clips from public.projects where id = $1", project_id)
    if row is None:
        return {"success": False, "error": "Project not found"}
    raw = row["clips"]
    clips: dict[str, Any] = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
    updated = dict(clips)
    details: list[dict[str, Any]] = []
    changed = False
    for job_id, value in clips.items():
        if value != "pending":
            details.append(
                {
                    "jobId": job_id,
                    "status": "failed" if value == "failed" else "completed",
                    "videoUrl": None if value == "failed" else value,
                    "alreadyProcessed": True,
                }
            )
            continue
        status, url, error = await runware.status(job_id)
        if status == "completed":
            updated[job_id] = url
            changed = True
        elif status == "failed":
            updated[job_id] = "failed"
            changed = True
        detail: dict[str, Any] = {
            "jobId": job_id,
            "status": status,
            "videoUrl": url,
            "alreadyProcessed": False,
        }
        if error is not None:
            detail["error"] = error
        details.append(detail)
    if changed:
        await db.execute(
            "update public.projects set clips = $1::jsonb where id = $2",
            json.dumps(updated),
            project_id,
        )
    values = list(updated.values())
    failed = values.count("failed")
    pending = values.count("pending")
    return {
        "success": True,
        "project_id": str(project_id),
        "total_clips": len(values),
        "completed": len(values) - failed - pending,
        "pending": pending,
        "failed": failed,
        "clips": updated,
        "details": details,
    }


async def projects_with_pending(db: asyncpg.Pool) -> list[UUID]:
    """What the seed's cron would call the function for: every project with a pending clip."""
    rows = await db.fetch(
        "select id from public.projects"
        " where jsonb_typeof(clips) = 'object'"
        " and jsonb_path_exists(clips, '$.* ? (@ == \"pending\")') order by id"
    )
    return [row["id"] for row in rows]
