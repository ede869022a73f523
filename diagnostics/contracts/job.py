"""The one shape of every job (plan → run → ingest) and of the executors that run jobs.

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

diagnostics.runners.local runs jobs here (`run_job`, the one entry point), diagnostics.runners.ray
on a Ray cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from data.records import Email, ScorerRef
from data.store import Store

Progress = Callable[[int], None]
ALL_CORPORA = "all corpora"  # the corpus of a store-wide work item, and what its result is stored under


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


