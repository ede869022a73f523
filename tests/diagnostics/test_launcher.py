import time

from data.records import JobRequest
from data.store import Store
from diagnostics.launcher import list_jobs, start_job


def _wait(settings, job_id, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = next(j for j in list_jobs(settings) if j.id == job_id)
        if job.status != "running":
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} still running after {timeout} s")


def test_background_job_runs_to_completion_and_reports(settings):
    job = start_job(settings, JobRequest("ingest", options=(("synthetic", True),)))
    assert job.status == "running"
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
