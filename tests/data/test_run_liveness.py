"""Runs say what happened to them: a run whose process is gone (SIGKILL) reads as interrupted with
the command that resumes it, a SIGTERMed command records that it failed, and a pid the system
reused for another process does not keep a dead run 'running'."""

import os
import signal
import subprocess
import sys
import textwrap
import time

from data.processes import ProcessIdentity, is_gone, this_process
from data.settings import PROJECT_ROOT
from data.store import Store


def _status_of(store_path, kind: str) -> tuple[str, str]:
    runs = Store.open(store_path, read_only=True).runs()
    row = runs[runs["kind"] == kind].iloc[0]
    return row["status"], row["error"] or ""


def _wait_for(condition, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.3)


def test_process_identity_tells_a_reused_pid_and_another_host():
    me = this_process()
    assert is_gone(me) is False
    assert is_gone(ProcessIdentity(me.pid, me.host, "1")) is True  # same pid, another start: not this run's process
    assert is_gone(ProcessIdentity(me.pid, "another-host", me.start)) is None
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    assert is_gone(ProcessIdentity(ended.pid, me.host, "")) is True


def test_a_sigkilled_run_reads_interrupted_with_what_to_rerun(store):
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(PROJECT_ROOT)!r})
        sys.argv = ["cli.py", "evaluate", "--sample-size", "100"]  # as `python cli.py evaluate` would be
        from data.store import Store
        Store.open({str(store.path)!r}).start_run("evaluate", {{}})
        print("started", flush=True)
        time.sleep(600)
    """)
    job = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert job.stdout.readline().strip() == "started"
        assert _status_of(store.path, "evaluate")[0] == "running"
        os.kill(job.pid, signal.SIGKILL)
        job.wait()
    finally:
        job.kill()
    status, error = _status_of(store.path, "evaluate")
    assert status == "interrupted"
    assert "python cli.py evaluate --sample-size 100" in error and "ended without finishing" in error
    assert Store.open(store.path).integrity_problems()["runs_interrupted"] == 1


def test_a_sigtermed_training_records_that_it_failed(evaluated_copy):
    command = [sys.executable, "cli.py", "--home", str(evaluated_copy.home), "--model", evaluated_copy.model,
               "--device", "cpu", "train", "generalist", "--epochs", "200", "--seed", "99"]
    job = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def training_started():
            assert job.poll() is None, job.stderr.read()
            runs = Store.open(evaluated_copy.store_path, read_only=True, busy_timeout=5).runs()
            return ((runs["kind"] == "train") & (runs["status"] == "running")).any()

        _wait_for(training_started)
        job.send_signal(signal.SIGTERM)
        job.wait(timeout=60)
    finally:
        job.kill()
    runs = Store.open(evaluated_copy.store_path, read_only=True).runs()
    last = runs[runs["kind"] == "train"].iloc[0]
    assert last["status"] == "failed" and "SIGTERM" in last["error"]
    assert job.returncode != 0
