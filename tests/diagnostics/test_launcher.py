import time

from data.records import JobRequest
from data.store import Store
from diagnostics.runners.background import list_jobs, start_job


def _wait(settings, job_id, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = next(j for j in list_jobs(settings) if j.id == job_id)
        if job.status not in ("queued", "running"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} still running after {timeout} s")


def test_background_job_runs_to_completion_and_reports(settings):
    job = start_job(settings, JobRequest("ingest", options=(("synthetic", True),)))
    assert job.status == "running"  # no other job: it holds the jobs' lock at once
    done = _wait(settings, job.id)
    assert done.status == "done" and done.returncode == 0
    assert "kept" in done.last_line
    with Store.open(settings.store_path, read_only=True) as store:
        assert len(store.corpus_names()) == 3


def test_failing_job_reports_its_error(settings):
    job = _wait(settings, start_job(settings, JobRequest("train", ("no-such-set",))).id)
    assert job.status == "failed" and job.returncode == 1
    assert "no-such-set" in job.last_line


def test_job_killed_without_status_is_lost(settings):
    import os
    import signal

    job = start_job(settings, JobRequest("ingest", options=(("synthetic", True),)))
    os.killpg(job.pid, signal.SIGKILL)
    time.sleep(0.5)
    assert next(j for j in list_jobs(settings) if j.id == job.id).status == "lost"


def test_jobs_of_one_home_run_one_at_a_time_and_a_waiting_one_says_it_is_queued(settings):
    from diagnostics.runners.background import QUEUED_LINE, jobs_dir

    first, second = (start_job(settings, JobRequest("ingest", options=(("synthetic", True),))) for _ in range(2))
    seen = set()
    deadline = time.time() + 240
    while time.time() < deadline:
        jobs = {j.id: j for j in list_jobs(settings)}
        seen |= {(jobs[j].status, jobs[j].last_line == QUEUED_LINE) for j in (first.id, second.id)}
        if all(jobs[j].status not in ("queued", "running") for j in (first.id, second.id)):
            break
        time.sleep(0.2)
    assert {jobs[first.id].status, jobs[second.id].status} == {"done"}
    assert ("queued", True) in seen and ("running", False) in seen  # one waited while the other ran
    folder = jobs_dir(settings)
    spans = sorted((folder / f"{j}.started").stat().st_mtime_ns for j in (first.id, second.id))
    ends = sorted((folder / f"{j}.rc").stat().st_mtime_ns for j in (first.id, second.id))
    assert spans[1] >= ends[0]  # the later one began only after the earlier one had ended
