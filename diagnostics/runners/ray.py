"""The Ray executor: any job's work items (diagnostics.runners.local) as Ray tasks.

Only the driver touches the DuckDB store (one writer). Each task carries its work item (the
emails' text included) and its adapter's files (a few MB, put in Ray's object store once per
adapter), so workers need no access to the store or the adapters folder. Workers load the base
model from their own models folder (`PHISHLENS_MODELS`; the offline models convert there on
first use, a hub model must be in each node's cache) and keep the last model between tasks.
A job whose records are table rows has them written on the worker as one Parquet shard under
`shard_dir` (on a multi-node cluster: storage every node and the driver can reach), which the
driver ingests idempotently; other records come back through Ray's object store.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from data.settings import PROJECT_ROOT, Settings
from diagnostics.contracts.job import Executor, Job, Progress, Shard, WorkerEnv
from diagnostics.runners.local import LocalExecutor, ModelSlot, set_threads

EXECUTORS = ("local", "ray")
# Emails per Ray task: enough work to amortise a task's overhead, small enough to spread.
PART_SIZES = {"evaluate": 64, "explain": 4, "heads": 16}


def adapter_files(folder: Path) -> dict[str, bytes]:
    """An adapter folder's files, to ship to workers that cannot see the driver's disk."""
    return {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}


def write_shard(records: list[dict], path: Path) -> None:
    """Records as one Parquet file, written under a temporary name and renamed: a reader never
    sees half a shard."""
    import pandas as pd

    frame = pd.DataFrame(records)
    tmp = path.with_name(path.name + ".partial")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


WORKER_SLOT = ModelSlot()  # per worker process: the model it opened last


def open_on_worker(job: Job, scorer, files: dict[str, bytes] | None, env: WorkerEnv) -> Any:
    """On a worker: the item's model, opened once and kept for the worker's next tasks; a
    shipped adapter's files are written to a temporary folder for the opening only."""

    def opener():
        folder = None
        if files is not None:
            folder = Path(tempfile.mkdtemp(prefix="phishlens-adapter-"))
            for name, content in files.items():
                (folder / name).write_bytes(content)
        try:
            return job.open(scorer, folder, env)
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)

    return WORKER_SLOT.get((job.name, scorer), opener)


def run_on_worker(job: Job, item, files: dict[str, bytes] | None, env: WorkerEnv, run_id: str,
                  shard_path: str) -> tuple[Any, int]:
    """A Ray task: run one work item; table rows go to a shard, other records are returned."""
    set_threads(env.threads)
    records = job.run(item, open_on_worker(job, item.scorer, files, env))
    rows = job.shard_rows(item, records, run_id) if hasattr(job, "shard_rows") else None
    if rows is None:
        return records, item.size
    write_shard(rows, Path(shard_path))
    return Shard(shard_path, len(rows)), item.size


def connect_ray(address: str | None, workers: int | None):
    """Join the cluster at `address`, or start a local Ray instance with `workers` CPUs."""
    import ray

    if ray.is_initialized():
        return ray
    if address:
        # Ship the code (not the venv, models or results) to the cluster's workers.
        excludes = [".venv", ".phishlens", "test-artifacts", ".git", "**/__pycache__"]
        ray.init(address=address, runtime_env={"working_dir": str(PROJECT_ROOT), "excludes": excludes},
                 log_to_driver=False)
    else:
        ray.init(num_cpus=workers or os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(PROJECT_ROOT)}})
    return ray


def shard_name(job: str, adapter_id: str, index: int) -> str:
    return f"{job}--{adapter_id.replace('/', '_').replace(':', '_')}--{index:05d}.parquet"


class RayExecutor:
    """Runs work items as Ray tasks (threads_per_worker CPUs each, a GPU on CUDA), retried twice if
    a worker dies; yields each item's result as soon as it finishes."""

    name = "ray"

    def __init__(self, shard_dir: Path, models_dir: Path | str, device: str = "auto", address: str | None = None,
                 workers: int | None = None, threads_per_worker: int = 1,
                 part_sizes: dict[str, int] | None = None) -> None:
        self.shard_dir = Path(shard_dir)
        self.env = WorkerEnv(str(models_dir), device, threads_per_worker)
        self.address, self.workers = address, workers
        self.part_sizes = {**PART_SIZES, **(part_sizes or {})}

    def params(self) -> dict:
        return {"address": self.address}

    def part_size(self, job_name: str) -> int | None:
        return self.part_sizes.get(job_name)

    def map(self, job: Job, items: Sequence, run_id: str, progress: Progress | None) -> Iterator[tuple[Any, Any]]:
        if not items:
            return
        ray = connect_ray(self.address, self.workers)
        gpus = 1 if self.env.device == "cuda" else 0
        remote = ray.remote(num_cpus=self.env.threads, num_gpus=gpus, max_retries=2)(run_on_worker)
        shards = self.shard_dir / run_id
        shards.mkdir(parents=True, exist_ok=True)
        shipped: dict[str | None, Any] = {None: None}
        refs = {}
        for index, item in enumerate(items):
            folder = item.scorer.adapter_dir
            if folder not in shipped:
                shipped[folder] = ray.put(adapter_files(Path(folder)))
            path = str(shards / shard_name(job.name, item.scorer.adapter_id, index))
            refs[remote.remote(job, item, shipped[folder], self.env, run_id, path)] = item
        waiting = list(refs)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            records, size = ray.get(ready[0])
            if progress:
                progress(size)
            yield refs[ready[0]], records


def check_executor(settings: Settings) -> None:
    """A clear error for an unknown executor, or for Ray when it is not installed."""
    if settings.executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, not {settings.executor!r}")
    if settings.executor == "ray" and importlib.util.find_spec("ray") is None:
        raise ValueError("the ray executor needs Ray: `pip install ray==2.60.0`")


def executor_for(settings: Settings) -> Executor:
    """The executor the settings name: this process (local) or Ray."""
    check_executor(settings)
    if settings.executor == "local":
        return LocalExecutor(settings.models_dir, settings.device)
    return RayExecutor(settings.shards_path, settings.models_dir, settings.device, settings.ray_address,
                       settings.ray_workers)
