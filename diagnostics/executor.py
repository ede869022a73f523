"""The one shape of every job, and the executor that runs it here.

A job (evaluate, explain, the head sweep, each diagnostic) is three functions:

- `plan(store)`: the work items still missing from the store (so a rerun resumes), the run's
  parameters, and whatever the job keeps on the driver between rounds; None when the store
  already holds the whole result (no run is recorded);
- `run(item, model)`: a pure function from one work item and the model it names to records;
  no store, no Streamlit, so it runs in this process or on a Ray worker alike;
- `ingest(store, run_id, plan, item, records)`: stores the records idempotently and returns
  follow-up items (a second round, e.g. exact ablation of the heads the first round ranked).

`open(scorer, adapter_dir, env)` loads the model a work item names; an executor keeps the last
one, so consecutive items of one scorer load it once. Jobs whose records are table rows also
say how to write them as a Parquet shard (`shard_rows`) and ingest a shard (`ingest_shard`):
Ray workers write shards, only the driver writes the store.

`run_job(store, job, executor)` is the one entry point; `LocalExecutor` runs items in this
process, `diagnostics.distributed.RayExecutor` as Ray tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from data.records import Email, ScorerRef
from data.store import Store

Progress = Callable[[int], None]


@dataclass
class Plan:
    """What a job will do: work items, the run's recorded parameters, and driver-side state."""

    items: list
    run_params: dict
    state: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # said before the items run (e.g. "already scored")
    done: int = 0  # emails already in the store (resumed), counted in the progress


@dataclass(frozen=True)
class WorkerEnv:
    """Where a worker finds models and what it runs on."""

    models_dir: str
    device: str = "auto"
    threads: int | None = None  # torch threads (None: leave torch's setting)


class WorkItem(Protocol):
    scorer: ScorerRef  # the model the item runs on
    size: int  # emails, for progress


class Job(Protocol):
    name: str  # the run's kind in the store's runs table
    description: str  # the progress bar's label

    def plan(self, store: Store) -> Plan | None: ...

    def open(self, scorer: ScorerRef, adapter_dir: Path | None, env: WorkerEnv) -> Any: ...

    def run(self, item: Any, model: Any, on_progress: Progress | None = None) -> Any: ...

    def ingest(self, store: Store, run_id: str, plan: Plan, item: Any, records: Any) -> Sequence: ...


@dataclass(frozen=True)
class EmailBatch:
    """A work item over some emails of one corpus, for one scorer (jobs add their own fields)."""

    scorer: ScorerRef
    corpus: str
    emails: tuple[Email, ...]

    @property
    def size(self) -> int:
        return len(self.emails)


@dataclass(frozen=True)
class Shard:
    """Records a worker wrote as one Parquet file instead of returning them."""

    path: str
    rows: int


class Executor(Protocol):
    name: str
    env: WorkerEnv

    def params(self) -> dict: ...

    def part_size(self, job_name: str) -> int | None:
        """Emails per work item this executor wants for the job (None: one item per corpus)."""

    def map(self, job: Job, items: Sequence, run_id: str, progress: Progress | None) -> Iterator[tuple[Any, Any]]:
        """Each item with its records (or the Shard they were written to), as items finish."""


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
