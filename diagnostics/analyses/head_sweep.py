"""The head sweep: every attention head's ablation effect on the score and on the matrix's F1
over a seeded sample of one corpus' test split, for one scorer, stored (diagnostics.runners.local's
shape). Two rounds: attribution patching of every head (the parts' head sums give the
mean-ablation values), then exact ablation of the top_k heads as a check. A sweep is a mean
over its emails, so it is stored once, when both rounds are in; a stored sweep is not redone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from data.metrics import f1_at_zero
from data.records import DiagnosticRequest, EvaluationTarget, HeadSweep, ScorerRef
from data.settings import load_settings
from data.store import Store
from diagnostics.analyses.bridge import HeadModel, boot_bridge
from diagnostics.contracts.job import Executor, Plan, Progress, WorkerEnv
from diagnostics.runners.local import LocalExecutor, run_job
from diagnostics.analyses.heads import ABLATIONS, AttributionPass, ablate_heads_exact, attribution_patching
from diagnostics.analyses.per_head import PromptPart, prompt_parts
from models.loading import load_model, scorer_ref

SWEEP_METHODS = ("attribution", "exact")


def _effect_rows(heads: Sequence[tuple[int, int]], deltas: np.ndarray, clean: np.ndarray, labels: np.ndarray,
                 method: str) -> list[dict]:
    base_f1 = f1_at_zero(clean, labels)
    return [{"layer": layer, "head": head, "method": method, "delta_logit": float(deltas[:, i].mean()),
             "delta_f1": f1_at_zero(clean + deltas[:, i], labels) - base_f1}
            for i, (layer, head) in enumerate(heads)]


def sweep_heads(hm: HeadModel, prompts: Sequence[list[int]], labels: Sequence[int], ablation: str = "mean",
                method: str = "attribution", top_k: int = 10, batch_size: int = 4,
                on_progress: Callable[[str, int, int], None] | None = None) -> HeadSweep:
    """Every head's ablation effect on the mean score and on F1 over the prompts.

    method "attribution": attribution patching for all heads, then exact ablation of the
    top_k heads by |Δ mean score| as a check (both kept, method column says which).
    method "exact": exact ablation of every head. on_progress(stage, done, total).
    """
    if ablation not in ABLATIONS:
        raise ValueError(f"ablation must be one of {ABLATIONS}, not {ablation!r}")
    if method not in SWEEP_METHODS:
        raise ValueError(f"method must be one of {SWEEP_METHODS}, not {method!r}")
    if not prompts:
        raise ValueError("no emails to sweep")
    labels = np.asarray(labels)
    seconds: dict[str, float] = {}

    def reporter(stage: str, total: int) -> Callable[[int], None]:
        done = [0]

        def step(k: int) -> None:
            done[0] += k
            if on_progress:
                on_progress(stage, done[0], total)
        return step

    start = time.perf_counter()
    patched = attribution_patching(hm, prompts, batch_size, reporter("attribution patching", len(prompts)))
    seconds["attribution"] = time.perf_counter() - start
    checked = heads_to_check(hm.n_layers, hm.n_heads, patched, ablation, method, top_k)
    start = time.perf_counter()
    clean, ablated = ablate_heads_exact(hm, prompts, checked, patched.means if ablation == "mean" else None,
                                        batch_size, reporter(f"exact ablation of {len(checked)} heads", len(prompts)))
    seconds["exact"] = time.perf_counter() - start
    return assemble_sweep(hm.adapter_id, hm.n_layers, hm.n_heads, ablation, method, labels, patched, checked, clean,
                          ablated, seconds)


def heads_to_check(n_layers: int, n_heads: int, patched: AttributionPass, ablation: str, method: str,
                   top_k: int) -> list[tuple[int, int]]:
    """The heads exact ablation runs on: the top_k by |estimated Δ mean score|, or all (exact)."""
    all_heads = [(layer, head) for layer in range(n_layers) for head in range(n_heads)]
    if method != "attribution":
        return all_heads
    estimates = patched.estimated_effects(ablation).reshape(len(patched.scores), -1)
    return [all_heads[i] for i in np.argsort(-np.abs(estimates.mean(0)))[:top_k]]


def assemble_sweep(adapter_id: str, n_layers: int, n_heads: int, ablation: str, method: str, labels: Sequence[int],
                   patched: AttributionPass, checked: Sequence[tuple[int, int]], clean: np.ndarray,
                   ablated: np.ndarray, seconds: dict[str, float]) -> HeadSweep:
    """A HeadSweep from the attribution pass and the exact ablation of the checked heads."""
    labels = np.asarray(labels)
    rows = []
    if method == "attribution":
        all_heads = [(layer, head) for layer in range(n_layers) for head in range(n_heads)]
        estimates = patched.estimated_effects(ablation).reshape(len(patched.scores), -1)
        rows = _effect_rows(all_heads, estimates, patched.scores, labels, "attribution")
    rows += _effect_rows(checked, ablated - clean[:, None], clean, labels, "exact")
    lens = pd.DataFrame({"layer": np.arange(-1, n_layers), "mean_score": patched.lens.mean(0),
                         "std_score": patched.lens.std(0)})
    return HeadSweep(adapter_id, ablation, len(clean), pd.DataFrame(rows), lens, f1_at_zero(clean, labels), seconds)


def sweep_params(corpus: str, sample: int, max_tokens: int, seed: int, ablation: str, top_k: int) -> str:
    """The key under which a head sweep is stored (changing any of these is a new sweep)."""
    return json.dumps({"corpus": corpus, "sample": sample, "max_tokens": max_tokens, "seed": seed,
                       "ablation": ablation, "top_k": top_k}, sort_keys=True)


# ---------------------------------------------------------------- the stored job


class AttributionPart(PromptPart):
    """Work item, round 1: attribution patching over a part of the sweep's prompts."""


@dataclass(frozen=True)
class AblationPart(PromptPart):
    """Work item, round 2: exact ablation of the checked heads over the same part."""

    heads: tuple[tuple[int, int], ...] = ()
    means: torch.Tensor | None = None


@dataclass
class HeadSweepJob:
    """One scorer's head sweep over a seeded stratified sample of a corpus' test split (the
    same emails every other job samples), in parts of emails_per_item emails (None: one part)."""

    target: EvaluationTarget
    corpus: str
    sample_size: int = 200
    max_tokens: int = 256
    seed: int = 0
    ablation: str = "mean"
    top_k: int = 10
    batch_size: int = 4
    models_dir: Path | None = None  # the tokenizer's, to build the prompts on the driver
    emails_per_item: int | None = None
    name = "heads"

    @property
    def description(self) -> str:
        return f"head sweep of {self.corpus}"

    def plan(self, store: Store) -> Plan | None:
        if self.ablation not in ABLATIONS:
            raise ValueError(f"ablation must be one of {ABLATIONS}, not {self.ablation!r}")
        scorer = scorer_ref(self.target)
        params = sweep_params(self.corpus, self.sample_size, self.max_tokens, self.seed, self.ablation, self.top_k)
        if store.has_head_sweep(scorer.adapter_id, params):
            return None
        emails, parts = prompt_parts(store, self.target, self.corpus, self.sample_size, self.seed, self.max_tokens,
                                     self.models_dir, self.batch_size, self.emails_per_item)
        items = [AttributionPart(p.scorer, p.index, p.prompts, p.batch_size) for p in parts]
        run_params = {"adapter": scorer.adapter_id, "corpus": self.corpus, "sample": self.sample_size,
                      "ablation": self.ablation, "top_k": self.top_k}
        state = {"params": params, "labels": [m.label for m in emails], "parts": len(items), "patched": {},
                 "ablated": {}, "started": time.perf_counter(), "seconds": {}}
        return Plan(items, run_params, state)

    def open(self, scorer: ScorerRef, adapter_dir: Path | None, env: WorkerEnv) -> HeadModel:
        return boot_bridge(load_model(scorer.model, adapter_dir, Path(env.models_dir), env.device))

    def run(self, item: AttributionPart | AblationPart, model: HeadModel, on_progress: Progress | None = None):
        prompts = [list(p) for p in item.prompts]
        if isinstance(item, AttributionPart):
            return attribution_patching(model, prompts, item.batch_size, on_progress)
        return ablate_heads_exact(model, prompts, list(item.heads), item.means, item.batch_size, on_progress)

    def ingest(self, store: Store, run_id: str, plan: Plan, item, records) -> list:
        state = plan.state
        if isinstance(item, AttributionPart):
            state["patched"][item.index] = records
            if len(state["patched"]) < state["parts"]:
                return []
            state["seconds"]["attribution"] = time.perf_counter() - state["started"]
            patched = AttributionPass.concatenate([state["patched"][i] for i in range(state["parts"])])
            state["pass"], state["started"] = patched, time.perf_counter()
            n_layers, n_heads = patched.z_dot_grad.shape[1:]
            state["checked"] = heads_to_check(n_layers, n_heads, patched, self.ablation, "attribution", self.top_k)
            means = patched.means if self.ablation == "mean" else None
            return [AblationPart(part.scorer, part.index, part.prompts, part.batch_size, heads=tuple(state["checked"]),
                                 means=means) for part in plan.items]
        state["ablated"][item.index] = records
        if len(state["ablated"]) < state["parts"]:
            return []
        state["seconds"]["exact"] = time.perf_counter() - state["started"]
        parts = [state["ablated"][i] for i in range(state["parts"])]
        patched = state["pass"]
        n_layers, n_heads = patched.z_dot_grad.shape[1:]
        sweep = assemble_sweep(item.scorer.adapter_id, n_layers, n_heads, self.ablation, "attribution",
                               state["labels"], patched, state["checked"], np.concatenate([c for c, _ in parts]),
                               np.concatenate([a for _, a in parts]), state["seconds"])
        store.add_head_sweep(run_id, self.corpus, state["params"], sweep)
        state["sweep"] = sweep
        return []


def sweep_corpus(store: Store, target: EvaluationTarget, corpus: str, sample_size: int = 200, max_tokens: int = 256,
                 seed: int = 0, ablation: str = "mean", top_k: int = 10, batch_size: int = 4,
                 executor: Executor | None = None, progress: bool = False,
                 models_dir: Path | None = None) -> HeadSweep | None:
    """Sweep every head of the target's scorer over a corpus sample and store it (HeadSweepJob, on the
    executor; default: this process, models from `models_dir`); None if the store already holds it."""
    executor = executor or LocalExecutor(models_dir or load_settings().models_dir)
    job = HeadSweepJob(target, corpus, sample_size, max_tokens, seed, ablation, top_k, batch_size,
                       Path(executor.env.models_dir), executor.part_size("heads"))
    outcome = run_job(store, job, executor, progress)
    return None if outcome.plan is None else outcome.plan.state["sweep"]


def job_for_request(request: DiagnosticRequest, models_dir: Path, emails_per_item: int | None = None) -> HeadSweepJob:
    """The registry's way in (`cli.py diagnose head-sweep`): mean ablation, the top 10 checked exactly."""
    return HeadSweepJob(request.target, request.corpus, request.sample_size, request.max_tokens, request.seed,
                        batch_size=request.batch_size, models_dir=models_dir, emails_per_item=emails_per_item)
