"""A running job and the dashboard share the store; a killed job loses and duplicates nothing.

The job is the real CLI (`cli.py evaluate`) in a subprocess with the tiny model; the
dashboard side is this process reading the store the way pages/_cache.py does.
"""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data.store import Store, StoreError
from diagnostics.runners.pipeline import ingest_synthetic
from tests.conftest import log_tail

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def synthetic_store(settings):
    with Store.open(settings.store_path) as store:
        ingest_synthetic(store, settings, per_corpus=400)
        expected = store.scalar("SELECT count(*) FROM splits WHERE split = 'test'")
    return settings, expected


def _start_evaluation(settings, model_dir: Path) -> subprocess.Popen:
    command = [sys.executable, str(ROOT / "cli.py"), "--home", str(settings.home), "--model", str(model_dir),
               "--device", "cpu", "evaluate", "--batch-size", "1", "--max-tokens", "96"]
    env = {**os.environ, "PHISHLENS_MODELS": str(settings.models_dir)}
    # A log file, not a pipe: this loop never reads the pipe while the job runs, and a full one
    # (64 KiB of progress bars) would block the job for good.
    with _log(settings).open("ab") as log:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _log(settings) -> Path:
    return settings.home / "evaluate.log"


def _predictions(path: Path) -> int:
    return Store.open(path, read_only=True, busy_timeout=30).scalar("SELECT count(*) FROM predictions")


def test_dashboard_reads_while_a_job_writes(synthetic_store, tiny_model_dir):
    settings, expected = synthetic_store
    job = _start_evaluation(settings, tiny_model_dir)
    reads, errors, seen = 0, [], set()
    while job.poll() is None:
        try:
            store = Store.open(settings.store_path, read_only=True, busy_timeout=15)
            with store.connection():
                store.metrics()
                seen.add(store.scalar("SELECT count(*) FROM predictions"))
            reads += 1
        except StoreError as exc:
            errors.append(str(exc))
        time.sleep(0.05)
    assert job.returncode == 0, log_tail(_log(settings))
    assert not errors, errors[:3]
    assert reads > 10
    assert _predictions(settings.store_path) == expected
    assert len(seen) >= 2  # the page saw results arrive while the job ran


def test_killed_evaluation_resumes_without_loss_or_duplicates(synthetic_store, tiny_model_dir):
    settings, expected = synthetic_store
    rng = random.Random(7)
    kills = 0
    # The first kill lands right after the first batch is committed (the job is surely still
    # running then); later ones at random moments, or not at all if the job ends first.
    for delay in (0.0, rng.uniform(0.0, 1.0), rng.uniform(0.0, 1.0)):
        job = _start_evaluation(settings, tiny_model_dir)
        while job.poll() is None and _predictions(settings.store_path) == 0:
            time.sleep(0.05)
        time.sleep(delay)
        if job.poll() is None:
            job.send_signal(signal.SIGKILL)
            kills += 1
        job.wait()
        count = _predictions(settings.store_path)
        assert count <= expected
        # whole (adapter, corpus) batches only: never a partial corpus
        per_corpus = Store.open(settings.store_path, read_only=True).query(
            "SELECT p.corpus, count(*) AS n, any_value(t.n) AS test_n FROM predictions p JOIN "
            "(SELECT corpus, count(*) AS n FROM splits WHERE split = 'test' GROUP BY corpus) t USING (corpus) "
            "GROUP BY p.corpus")
        assert (per_corpus["n"] == per_corpus["test_n"]).all(), per_corpus
    final = _start_evaluation(settings, tiny_model_dir)
    assert final.wait() == 0, log_tail(_log(settings))
    store = Store.open(settings.store_path, read_only=True)
    assert store.scalar("SELECT count(*) FROM predictions") == expected
    assert store.scalar("SELECT count(*) - count(DISTINCT (adapter_id, email_id)) FROM predictions") == 0
    assert kills >= 1


WRITER = """
import sys
from data.records import Prediction
from data.store import Store
store = Store.open(sys.argv[1])
for i in range(40):
    store.add_predictions([Prediction('r', sys.argv[2], 'm', f'{sys.argv[2]}-{i}-{j}', 'c', 0.1, 1, 1) for j in range(25)])
    store.start_run('evaluate', {'writer': sys.argv[2], 'step': i})
"""


def test_concurrent_writers_are_serialized_without_errors(settings):
    Store.open(settings.store_path).close()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(settings.store_path), name], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for name in ("a", "b", "c")]
    outputs = [w.communicate(timeout=300)[0].decode() for w in writers]
    assert [w.returncode for w in writers] == [0, 0, 0], outputs
    store = Store.open(settings.store_path, read_only=True)
    assert store.scalar("SELECT count(*) FROM predictions") == 3 * 40 * 25
    assert store.scalar("SELECT count(*) FROM runs") == 3 * 40
