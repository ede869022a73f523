"""Start CLI jobs in the background from the dashboard, and read their state back.

A job is `python cli.py ...` in its own session (start_new_session), so it keeps running
when the browser tab or the Streamlit session goes away. Its output goes to a log file
and its exit status to a .rc file next to it, under <home>/jobs/.

Jobs of one home run one at a time: each waits for a lock (flock on <home>/jobs/run.lock) and
is "queued" until it holds it (two queued jobs start in either order). Torch jobs side by side
on a small CPU each run many times slower than alone (their threads fight for the same cores),
so a second click queues the work instead of slowing the first.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

from data.records import BackgroundJob, JobRequest
from data.settings import PROJECT_ROOT, Settings


def jobs_dir(settings: Settings) -> Path:
    return settings.home / "jobs"


def start_job(settings: Settings, request: JobRequest) -> BackgroundJob:
    """Run the request's `cli.py` call detached, against the settings' store and home."""
    arguments = request.arguments()
    folder = jobs_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    job_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    log, rc, started = folder / f"{job_id}.log", folder / f"{job_id}.rc", folder / f"{job_id}.started"
    command = [sys.executable, str(PROJECT_ROOT / "cli.py"), "--home", str(settings.home),
               "--store", str(settings.store_path), "--model", settings.model, "--device", settings.device,
               *arguments]
    # The shell waits its turn (the lock is released when the job's processes end, killed or
    # not), marks the start, and records the exit status once the job ends, whoever is watching.
    lock = shlex.quote(str(folder / "run.lock"))
    wrapper = (f"if command -v flock > /dev/null; then exec 9>> {lock}; flock 9; fi; touch {shlex.quote(str(started))}; "
               f"{shlex.join(command)} > {shlex.quote(str(log))} 2>&1; echo $? > {shlex.quote(str(rc))}")
    process = subprocess.Popen(["bash", "-c", wrapper], cwd=PROJECT_ROOT, start_new_session=True,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    meta = {"id": job_id, "command": "cli.py " + shlex.join(arguments), "started": time.time(), "pid": process.pid}
    (folder / f"{job_id}.json").write_text(json.dumps(meta))
    deadline = time.monotonic() + 2.0  # a free lock is taken in milliseconds: report running, not queued
    while not started.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return read_job(folder / f"{job_id}.json")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A finished child of this process stays a zombie until reaped; reap it if it is ours.
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        return finished == 0
    except ChildProcessError:
        return True


def last_progress_line(log: Path, max_bytes: int = 4096) -> str:
    """The last non-empty line of a log, progress bars' carriage returns included."""
    if not log.exists():
        return ""
    with open(log, "rb") as handle:
        handle.seek(max(0, log.stat().st_size - max_bytes))
        tail = handle.read().decode("utf-8", "replace")
    lines = [line.strip() for line in re.split(r"[\r\n]+", tail) if line.strip()]
    return lines[-1] if lines else ""


def read_job(meta_path: Path) -> BackgroundJob:
    meta = json.loads(meta_path.read_text())
    log, rc_path, started = (meta_path.with_suffix(suffix) for suffix in (".log", ".rc", ".started"))
    returncode = int(rc_path.read_text().strip()) if rc_path.exists() and rc_path.read_text().strip() else None
    if returncode is not None:
        status = "done" if returncode == 0 else "failed"
    elif not _alive(meta["pid"]):
        status = "lost"  # killed before it could record a status
    else:
        status = "running" if started.exists() else "queued"
    line = QUEUED_LINE if status == "queued" else last_progress_line(log)
    return BackgroundJob(meta["id"], meta["command"], meta["started"], meta["pid"], log, status, returncode, line)


QUEUED_LINE = "queued: starts when the job before it ends (one job runs at a time)"


def list_jobs(settings: Settings) -> list[BackgroundJob]:
    """Jobs started from the dashboard, newest first."""
    folder = jobs_dir(settings)
    if not folder.exists():
        return []
    return [read_job(p) for p in sorted(folder.glob("*.json"), reverse=True)]
