"""Diagnostics over a seeded sample of test emails whose result is a small grid of values with
intervals (rows × columns: counterfactual × measure, layer × accuracy, …), stored in the store's
diagnostic_values table and drawn by the page the registry names. The job shape
(diagnostics.runners.local) is written once here: a subclass says what one part of the sample
measures (`measure`, on a worker) and how the parts sum up (`summarize`, on the driver).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from data.records import DiagnosticRequest, Email, ScorerRef
from data.metrics import Z95, wilson_interval  # noqa: F401 (wilson_interval: re-exported)
from data.splits import test_sample
from data.store import Store
from diagnostics.contracts.job import ALL_CORPORA, Plan, Progress, WorkerEnv  # noqa: F401 (ALL_CORPORA: re-exported)
from models.loading import LoadedModel, load_model, scorer_ref

GRID_COLUMNS = ["row", "column", "value", "low", "high", "n"]


@dataclass(frozen=True)
class SamplePart:
    """Work item: part `index` of the sample's emails (with whatever the diagnostic pairs them with)."""

    scorer: ScorerRef
    index: int
    emails: tuple[Email, ...]
    extra: tuple = ()  # per email: what the plan paired it with (e.g. a donor email)

    @property
    def size(self) -> int:
        return len(self.emails)


def mean_interval(values: np.ndarray, z: float = Z95) -> tuple[float, float, float]:
    """(mean, low, high): the mean with its normal-approximation 95% interval."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    half = z * float(values.std(ddof=1)) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return mean, mean - half, mean + half


class SampleDiagnostic:
    """Base of sample diagnostics: plan (skip what is stored; the sample every job draws), open (the
    classifier), run (`measure` one part), ingest (`summarize` once every part is in, store)."""

    name = ""  # the stable name: registry key, and what diagnostic_values rows are stored under
    extra_key: dict = {}  # what else, besides the request, makes a result a new one

    def __init__(self, request: DiagnosticRequest, models_dir: Path, emails_per_item: int | None = None) -> None:
        self.request, self.models_dir, self.emails_per_item = request, Path(models_dir), emails_per_item

    @property
    def corpus(self) -> str:
        """What the result is stored under as its corpus: ALL_CORPORA for a store-wide diagnostic."""
        return self.request.corpus

    @property
    def description(self) -> str:
        return f"{self.name} on {self.corpus}"

    # ------------------------------------------------------------ what a subclass says
    def sample(self, store: Store) -> list[Email]:
        """The emails to measure: the corpus' seeded stratified test sample, or that of every corpus
        (sample_size each) for a store-wide diagnostic."""
        r = self.request
        corpora = store.corpus_names() if self.corpus == ALL_CORPORA else [r.corpus]
        return [m for corpus in corpora for m in store.emails_by_ids(test_sample(store, corpus, r.sample_size, r.seed))]

    def pair(self, emails: Sequence[Email]) -> list:
        """Per email, what a part carries with it (default: nothing)."""
        return [() for _ in emails]

    def measure(self, model: LoadedModel, part: SamplePart, on_progress: Progress | None = None):
        raise NotImplementedError

    def context(self, store: Store) -> dict:
        """What summarize needs from the store besides the emails (read at plan time, on the driver)."""
        return {}

    def summarize(self, emails: Sequence[Email], measured: Sequence, context: dict) -> pd.DataFrame:
        """The grid (GRID_COLUMNS) from every part's measurements, in sample order."""
        raise NotImplementedError

    def params(self) -> str:
        return self.request.params_key(self.corpus, **self.extra_key)

    # ------------------------------------------------------------ the job shape
    def plan(self, store: Store) -> Plan | None:
        scorer = scorer_ref(self.request.target)
        if store.has_diagnostic_values(self.name, scorer.adapter_id, self.params()):
            return None
        emails = self.sample(store)
        if not emails:
            raise ValueError(f"{self.name}: no test emails to sample in {self.request.corpus!r}; ingest it first")
        extra = self.pair(emails)
        step = self.emails_per_item or len(emails)
        items = [SamplePart(scorer, i // step, tuple(emails[i:i + step]), tuple(extra[i:i + step]))
                 for i in range(0, len(emails), step)]
        run_params = {"diagnostic": self.name, "adapter": scorer.adapter_id, "corpus": self.corpus,
                      "sample": self.request.sample_size}
        return Plan(items, run_params, {"parts": {}, "count": len(items), "emails": emails,
                                        "context": self.context(store)})

    def open(self, scorer: ScorerRef, adapter_dir: Path | None, env: WorkerEnv) -> LoadedModel:
        return load_model(scorer.model, adapter_dir, Path(env.models_dir), env.device, scorer.quantize)

    def run(self, item: SamplePart, model: LoadedModel, on_progress: Progress | None = None):
        return self.measure(model, item, on_progress)

    def ingest(self, store: Store, run_id: str, plan: Plan, item: SamplePart, records) -> list:
        parts = plan.state["parts"]
        parts[item.index] = records
        if len(parts) == plan.state["count"]:
            grid = self.summarize(plan.state["emails"], [parts[i] for i in range(plan.state["count"])],
                                  plan.state["context"])
            store.add_diagnostic_values(run_id, self.name, self.corpus, self.params(), item.scorer.adapter_id,
                                        grid[GRID_COLUMNS])
        return []
