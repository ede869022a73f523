"""Per-head diagnostics: one number per attention head (and one for everything else: the
embedding, the MLPs, biases), averaged over a seeded sample of a corpus' test split for one
scorer, stored in the store's head_values table and drawn as a layer × head grid on the Heads
page. The job shape (diagnostics.runners.local) is written once here: a new per-head diagnostic is a
subclass that says how to open the model and what `values` are, and one line in
diagnostics.contracts.registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from data.records import DiagnosticRequest, Email, EvaluationTarget, ScorerRef
from data.splits import test_sample
from data.store import Store
from diagnostics.analyses.bridge import HeadModel, boot_bridge, sample_prompts
from diagnostics.contracts.job import Plan, Progress, WorkerEnv
from models.loading import load_model, scorer_ref

REMAINDER = (-1, -1)  # the (layer, head) row that holds what no head accounts for


@dataclass(frozen=True)
class PromptPart:
    """Work item: part `index` of a corpus sample's prompts, for one scorer."""

    scorer: ScorerRef
    index: int
    prompts: tuple[tuple[int, ...], ...]
    batch_size: int

    @property
    def size(self) -> int:
        return len(self.prompts)


def prompt_parts(store: Store, target: EvaluationTarget, corpus: str, sample_size: int, seed: int, max_tokens: int,
                 models_dir: Path, batch_size: int, emails_per_part: int | None) -> tuple[list[Email], list[PromptPart]]:
    """The seeded stratified test sample of a corpus (the emails every job samples) and its prompts
    in parts of emails_per_part (None: one part)."""
    emails = store.emails_by_ids(test_sample(store, corpus, sample_size, seed))
    if not emails:
        raise ValueError(f"corpus {corpus!r} has no test split; ingest it first")
    prompts = sample_prompts(target, emails, max_tokens, models_dir)
    step = emails_per_part or len(prompts)
    scorer = scorer_ref(target)
    return emails, [PromptPart(scorer, i // step, tuple(prompts[i:i + step]), batch_size)
                    for i in range(0, len(prompts), step)]


@dataclass(frozen=True)
class HeadValues:
    """What a per-head diagnostic computes for some prompts."""

    per_head: np.ndarray  # (n, n_layers, n_heads)
    remainder: np.ndarray  # (n,)


class PerHeadDiagnostic:
    """Base of per-head diagnostics: plan (skip what is stored), open (a bridge), run (`values`),
    ingest (mean and spread over the emails, stored once every part is in)."""

    name = ""  # the stable name: registry key, and what head_values rows are stored under
    unit = ""  # what a value measures, for the colour bar

    def __init__(self, request: DiagnosticRequest, models_dir: Path, emails_per_item: int | None = None) -> None:
        self.request, self.models_dir, self.emails_per_item = request, Path(models_dir), emails_per_item

    @property
    def description(self) -> str:
        return f"{self.name} on {self.request.corpus}"

    def values(self, model: HeadModel, prompts: Sequence[list[int]], batch_size: int,
               on_progress: Progress | None = None) -> HeadValues:
        raise NotImplementedError

    def params(self) -> str:
        return self.request.params_key(self.request.corpus)

    def plan(self, store: Store) -> Plan | None:
        scorer = scorer_ref(self.request.target)
        if store.has_head_values(self.name, scorer.adapter_id, self.params()):
            return None
        r = self.request
        _, items = prompt_parts(store, r.target, r.corpus, r.sample_size, r.seed, r.max_tokens, self.models_dir,
                                r.batch_size, self.emails_per_item)
        run_params = {"diagnostic": self.name, "adapter": scorer.adapter_id, "corpus": r.corpus,
                      "sample": r.sample_size}
        return Plan(items, run_params, {"parts": {}, "count": len(items)})

    def open(self, scorer: ScorerRef, adapter_dir: Path | None, env: WorkerEnv) -> HeadModel:
        return boot_bridge(load_model(scorer.model, adapter_dir, Path(env.models_dir), env.device))

    def run(self, item: PromptPart, model: HeadModel, on_progress: Progress | None = None) -> HeadValues:
        return self.values(model, [list(p) for p in item.prompts], item.batch_size, on_progress)

    def ingest(self, store: Store, run_id: str, plan: Plan, item: PromptPart, records: HeadValues) -> list:
        parts = plan.state["parts"]
        parts[item.index] = records
        if len(parts) == plan.state["count"]:
            ordered = [parts[i] for i in range(plan.state["count"])]
            store.add_head_values(run_id, self.name, self.request.corpus, self.params(), item.scorer.adapter_id,
                                  summarize(np.concatenate([p.per_head for p in ordered]),
                                            np.concatenate([p.remainder for p in ordered])))
        return []


def summarize(per_head: np.ndarray, remainder: np.ndarray) -> pd.DataFrame:
    """Rows (layer, head, value, spread, n_emails): the mean and standard deviation over the emails
    of each head's value, and of the remainder as (layer, head) = REMAINDER (none where the
    remainder is all NaN: a non-additive diagnostic)."""
    n, layers, heads = per_head.shape
    layer, head = np.meshgrid(np.arange(layers), np.arange(heads), indexing="ij")
    frame = pd.DataFrame({"layer": layer.ravel(), "head": head.ravel(), "value": per_head.mean(0).ravel(),
                          "spread": per_head.std(0).ravel()})
    if np.isnan(remainder).all():  # a diagnostic that does not add up to anything has no remainder row
        return frame.assign(n_emails=n)
    rest = pd.DataFrame({"layer": [REMAINDER[0]], "head": [REMAINDER[1]], "value": [remainder.mean()],
                         "spread": [remainder.std()]})
    return pd.concat([frame, rest], ignore_index=True).assign(n_emails=n)


def head_grid(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A (layer, head) matrix of one column of a per-head frame (the remainder row left out)."""
    frame = frame[frame["layer"] >= 0]
    values = np.full((int(frame["layer"].max()) + 1, int(frame["head"].max()) + 1), np.nan)
    values[frame["layer"].to_numpy(), frame["head"].to_numpy()] = frame[column].to_numpy(dtype=float)
    return values
