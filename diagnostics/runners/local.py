"""The executor that runs work items in this process, and `run_job`, the one entry point every
job runs through (here or, with diagnostics.runners.ray's executor, on Ray)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from data.store import Store
from diagnostics.contracts.job import Executor, Job, Plan, Progress, Shard, WorkerEnv


def set_threads(threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)


class ModelSlot:
    """The one model a worker (or this process) holds: reopened only when the key changes, so a
    worker's memory stays that of one model."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.model: Any = None

    def get(self, key: tuple, opener: Callable[[], Any]) -> Any:
        if key != self.key:
            self.key, self.model = None, None  # drop the old one before loading the next
            self.model, self.key = opener(), key
        return self.model


class LocalExecutor:
    """Runs work items one after another in this process, the model kept between items."""

    name = "local"

    def __init__(self, models_dir: Path | str, device: str = "auto", threads: int | None = None) -> None:
        self.env = WorkerEnv(str(models_dir), device, threads)
        self.slot = ModelSlot()

    def params(self) -> dict:
        return {}

    def part_size(self, job_name: str) -> int | None:
        return {"explain": 1}.get(job_name)  # each explanation stored as it is done

    def map(self, job: Job, items: Sequence, run_id: str, progress: Progress | None) -> Iterator[tuple[Any, Any]]:
        set_threads(self.env.threads)
        for item in items:
            ref = item.scorer
            model = self.slot.get((job.name, ref), lambda: job.open(
                ref, Path(ref.adapter_dir) if ref.adapter_dir else None, self.env))
            yield item, job.run(item, model, progress)


@dataclass
class JobOutcome:
    run_id: str | None  # None: the store held the result already, nothing ran
    plan: Plan | None


def run_job(store: Store, job: Job, executor: Executor, progress: bool = True,
            on_progress: Callable[[int, int], None] | None = None) -> JobOutcome:
    """Plan the job, run its items on the executor, ingest each result as it arrives (a run
    killed at any point keeps what was ingested; rerunning resumes), then any follow-up rounds.
    progress: a tqdm bar; on_progress(done, total) is called as emails are done (the pages')."""
    plan = job.plan(store)
    if plan is None:
        return JobOutcome(None, None)
    for note in plan.notes:
        if progress:
            tqdm.write(note)
    params = {**plan.run_params, **({"executor": executor.name, **executor.params()}
                                    if executor.name != "local" else {})}
    with store.run(job.name, params) as run_id:
        items = list(plan.items)
        count = {"done": plan.done, "total": plan.done + sum(i.size for i in items)}
        with tqdm(total=count["total"], initial=plan.done, desc=job.description, unit=" mails",
                  disable=not progress) as bar:

            def advance(emails: int) -> None:  # a disabled tqdm counts nothing, so count here
                count["done"] += emails
                bar.update(emails)
                if on_progress:
                    on_progress(count["done"], count["total"])

            advance(0)
            while items:
                follow_ups: list = []
                for item, records in executor.map(job, items, run_id, advance):
                    if isinstance(records, Shard):
                        more = job.ingest_shard(store, run_id, plan, item, Path(records.path))
                    else:
                        more = job.ingest(store, run_id, plan, item, records)
                    follow_ups += list(more or [])
                count["total"] += sum(i.size for i in follow_ups)
                bar.total = count["total"]
                items = follow_ups
    return JobOutcome(run_id, plan)
