"""W8 archive: memory and throughput of archiving one large video (download from the Runware
simulator, upload to the Storage stand-in) against a plain streamed copy of the same bytes.

Each transfer runs in a child process (`python -m bench.w8_archive --child …`), so its memory
is that of the transfer alone: the child reads its own VmHWM (peak RSS) from /proc before and
after. The simulator and the stand-in are served by the bench process.

- archive: `reconciler.archive.transfer` — allow-list check, streamed download to a file with
  the size cap and sha256, then a TUS resumable upload in 6 MiB chunks (the size is above the
  resumable threshold).
- plain copy (the baseline): an httpx streamed GET written to a file, then one streamed POST of
  that file (a standard upload with `x-upsert`): the same two hops with nothing checked,
  hashed or chunked.

Rounds alternate (copy, archive, copy, archive, …) so both see the same machine; the median
of each is compared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.context import BenchContext
from bench.report import Outcome, Row, fmt, fmt_ratio
from bench.stats import rounded
from reconciler.archive.transfer import StorageUploader, download
from reconciler.clips import UrlPolicy
from reconciler.local.simulator import RunwareSimulator, SimulatorConfig, VideoFiles
from reconciler.local.storage import StorageStandIn
from tests.cli import REPO_ROOT

MIB = 1024 * 1024
KEY = "bench-service-role-key"
BUCKET = "videos"
TARGET_GROWTH_MB = 30.0
TARGET_RATIO = 0.8
_PIECE = 256 * 1024
_CHILD_TIMEOUT_SECONDS = 900.0


@dataclass(frozen=True)
class Sizes:
    video_bytes: int
    rounds: int


def sizes(quick: bool) -> Sizes:
    return Sizes(video_bytes=20 * MIB, rounds=2) if quick else Sizes(500 * MIB, rounds=2)


@dataclass(frozen=True)
class Transfer:
    mode: str
    seconds: float
    size: int
    sha256: str
    hwm_growth_kib: int

    @property
    def mb_per_second(self) -> float:
        return self.size / MIB / self.seconds if self.seconds > 0 else float("nan")


# --- The child: one transfer, measured from inside -----------------------------------------------


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name == key:
            return int(rest.split()[0])
    raise RuntimeError(f"/proc/self/status has no {key}")


async def _file_pieces(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as file:
        while piece := file.read(_PIECE):
            yield piece


async def _plain_copy(
    client: httpx.AsyncClient, url: str, storage_url: str, workdir: Path
) -> tuple[int, str]:
    path = workdir / "copy.mp4"
    async with client.stream("GET", url) as response:
        response.raise_for_status()
        with path.open("wb") as file:
            async for piece in response.aiter_raw(_PIECE):
                file.write(piece)
    size = path.stat().st_size
    answer = await client.post(
        f"{storage_url}/storage/v1/object/{BUCKET}/bench/copy.mp4",
        headers={
            "authorization": f"Bearer {KEY}",
            "apikey": KEY,
            "x-upsert": "true",
            "content-type": "video/mp4",
            "content-length": str(size),
        },
        content=_file_pieces(path),
    )
    answer.raise_for_status()
    path.unlink()
    return size, ""


async def _archive(
    client: httpx.AsyncClient, url: str, storage_url: str, origin: str, workdir: Path
) -> tuple[int, str]:
    policy = UrlPolicy.from_entries([origin])
    got = await download(client, url, policy=policy, max_bytes=2**40, into=workdir)
    try:
        await StorageUploader(client, storage_url, KEY).upload(BUCKET, "bench/archive.mp4", got)
    finally:
        got.path.unlink(missing_ok=True)
    return got.size, got.sha256


async def _child(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir)
    before = _status_kib("VmHWM")
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=120) as client:
        if args.mode == "archive":
            size, sha256 = await _archive(client, args.url, args.storage, args.origin, workdir)
        else:
            size, sha256 = await _plain_copy(client, args.url, args.storage, workdir)
    seconds = time.perf_counter() - started
    return {
        "mode": args.mode,
        "seconds": seconds,
        "size": size,
        "sha256": sha256,
        "hwm_growth_kib": _status_kib("VmHWM") - before,
    }


def child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.w8_archive")
    parser.add_argument("--child", dest="mode", choices=("archive", "copy"), required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--storage", required=True)
    parser.add_argument("--origin", required=True)
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(_child(args))), flush=True)
    return 0


# --- The workload -------------------------------------------------------------------------------


async def _run_child(
    mode: str, url: str, sim: RunwareSimulator, storage: StorageStandIn
) -> Transfer:
    with tempfile.TemporaryDirectory(prefix="w8-") as workdir:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.w8_archive",
            "--child",
            mode,
            "--url",
            url,
            "--storage",
            storage.url,
            "--origin",
            sim.base_url,
            "--workdir",
            workdir,
            cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), _CHILD_TIMEOUT_SECONDS)
        except BaseException:
            process.kill()
            await process.wait()
            raise
    if process.returncode != 0:
        raise RuntimeError(f"W8 {mode} child failed: {err.decode()[-2000:]}")
    found = json.loads(out.decode().strip().splitlines()[-1])
    return Transfer(
        mode=mode,
        seconds=float(found["seconds"]),
        size=int(found["size"]),
        sha256=str(found["sha256"]),
        hwm_growth_kib=int(found["hwm_growth_kib"]),
    )


async def _stored_sha256(storage: StorageStandIn, name: str) -> str:
    digest = await asyncio.to_thread(storage.object_sha256, BUCKET, name)
    if digest is None:
        raise RuntimeError(f"W8: nothing stored at {name}")
    return digest


async def run(ctx: BenchContext) -> Outcome:
    size = sizes(ctx.quick)
    config = SimulatorConfig(videos=VideoFiles(on_own_origin=True, size_bytes=size.video_bytes))
    copies: list[Transfer] = []
    archives: list[Transfer] = []
    async with RunwareSimulator(config) as sim, StorageStandIn(KEY, buckets=[BUCKET]) as storage:
        url = sim.add_job("w8-video", duration=0).video_urls()[0]
        for round_number in range(size.rounds):
            ctx.say(f"W8 round {round_number + 1}/{size.rounds}: {size.video_bytes // MIB} MiB")
            copies.append(await _run_child("copy", url, sim, storage))
            archives.append(await _run_child("archive", url, sim, storage))
        copied_sha = await _stored_sha256(storage, "bench/copy.mp4")
        archived_sha = await _stored_sha256(storage, "bench/archive.mp4")
    identical = copied_sha == archived_sha and all(a.sha256 == archived_sha for a in archives)
    copy_seconds = statistics.median(c.seconds for c in copies)
    archive_seconds = statistics.median(a.seconds for a in archives)
    copy_rate = size.video_bytes / MIB / copy_seconds
    archive_rate = size.video_bytes / MIB / archive_seconds
    ratio = archive_rate / copy_rate
    growth_mb = max(a.hwm_growth_kib for a in archives) / 1024
    copy_growth_mb = max(c.hwm_growth_kib for c in copies) / 1024
    met = growth_mb <= TARGET_GROWTH_MB and ratio >= TARGET_RATIO and identical
    outcome = Outcome(
        name="W8",
        title="archive",
        params={"video_bytes": size.video_bytes, "rounds": size.rounds, "tus_chunk_mib": 6},
        figures={
            "archive": {
                "median_seconds": rounded(archive_seconds, 3),
                "mb_per_second": rounded(archive_rate, 1),
                "peak_rss_growth_mb": rounded(growth_mb, 1),
                "rounds_seconds": [rounded(a.seconds, 3) for a in archives],
            },
            "plain_copy": {
                "median_seconds": rounded(copy_seconds, 3),
                "mb_per_second": rounded(copy_rate, 1),
                "peak_rss_growth_mb": rounded(copy_growth_mb, 1),
                "rounds_seconds": [rounded(c.seconds, 3) for c in copies],
            },
            "stored_bytes_identical": identical,
        },
        ratios={"throughput_archive_over_copy": rounded(ratio, 3)},
        targets={
            "growth_mb_at_most": TARGET_GROWTH_MB,
            "throughput_ratio_at_least": TARGET_RATIO,
            "met": met,
        },
        notes=[
            "each transfer runs in its own child process; peak RSS growth = its VmHWM after "
            "the transfer minus before it",
            "plain copy = streamed GET to a file, then one streamed POST (standard upload); "
            "archive = reconciler.archive.transfer: checked, capped, hashed download, then a "
            "TUS upload in 6 MiB chunks",
            "simulator and Storage stand-in on loopback, served by the bench process",
        ],
    )
    outcome.rows = [
        Row(
            f"throughput, {size.video_bytes // MIB} MiB video",
            fmt(archive_rate, " MB/s"),
            fmt(copy_rate, " MB/s"),
            fmt_ratio(ratio),
            f"≥ {TARGET_RATIO:g}x",
            ratio >= TARGET_RATIO,
        ),
        Row(
            "peak RSS growth of the transfer process",
            fmt(growth_mb, " MB"),
            fmt(copy_growth_mb, " MB"),
            "",
            f"≤ {TARGET_GROWTH_MB:g} MB",
            growth_mb <= TARGET_GROWTH_MB,
        ),
        Row("stored bytes identical", "yes" if identical else "NO", "", "", "", identical),
    ]
    return outcome


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
