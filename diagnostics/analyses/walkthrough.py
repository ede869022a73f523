"""The Live demo's guided walk-through: which failure to show, and the results each step opens.

`plan_walkthrough` reads the store's F1 matrix for the specialist whose out-of-domain F1 falls
furthest below its in-domain F1, the corpus it fails on worst, and its most confident wrong
verdict there. `walkthrough_steps` lists the stored diagnostics the steps show, for that
specialist and the generalist beside it: word drivers on every corpus, field counterfactuals,
direct logit attribution, the corpus-fingerprint audit, the nearest-training-email index and the
label audit (is the "mistake" the label's?).
The demo job runs them, so that in a live demo every click opens a result rather than a start
button. Each is an ordinary stored job: skipped when stored, resumable when interrupted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from data.records import DiagnosticRequest, EvaluationTarget
from data.schema import LABEL_AUDIT
from data.store import Store
from diagnostics.contracts.job import Executor
from diagnostics.runners.local import run_job
from diagnostics.contracts.registry import diagnostic

# About 2.6 s per email on 2 CPU cores, where SHAP takes tens; gradient × input (0.4 s) gives the
# demo's planted link domain the wrong sign (diagnostics/analyses/explainers.py).
WALKTHROUGH_METHOD = "integrated-gradients"


@dataclass(frozen=True)
class Walkthrough:
    """The failure a presenter walks through, read from the stored F1 matrix."""

    training_set: str  # the specialist's
    adapter_id: str
    adapter_path: str
    home_corpus: str
    home_f1: float
    failing_corpus: str  # its lowest out-of-domain F1
    failing_f1: float
    failing_n: int
    mistake_id: str | None  # its most confident wrong verdict on the failing corpus
    generalist: tuple[str, str] | None  # (training set, adapter path) of the same model, if trained
    generalist_id: str | None = None  # that generalist's adapter id (its first seed where there are several)
    suspect_id: str | None = None  # a suspected label error it scored (the label audit's), wrong by the corpus first

    @property
    def drop(self) -> float:
        return self.home_f1 - self.failing_f1


def plan_walkthrough(store: Store, model: str | None = None) -> Walkthrough | None:
    """The specialist (of `model`, or any) with the largest in- minus out-of-domain F1, or None
    when the store has no evaluated specialist with an out-of-domain corpus."""
    metrics, adapters = store.metrics(), store.adapters()  # adapters: LoRA ones, not the bag-of-words reference
    metrics = metrics[(metrics["paradigm"] == "specialist") & metrics["f1"].notna()
                      & metrics["adapter_id"].isin(adapters["id"])]
    if model:
        metrics = metrics[metrics["model"] == model]
    best = None
    for adapter_id, rows in metrics.groupby("adapter_id"):
        home, away = rows[rows["in_domain"]], rows[~rows["in_domain"]]
        if home.empty or away.empty:
            continue
        worst = away.sort_values(["f1", "corpus"]).iloc[0]
        drop = float(home["f1"].iloc[0] - worst["f1"])
        if best is None or drop > best[0]:
            best = (drop, adapter_id, home.iloc[0], worst)
    if best is None:
        return None
    _, adapter_id, home, worst = best
    record = adapters[adapters["id"] == adapter_id].iloc[0]
    generalist = adapters[(adapters["training_set"] == "generalist") & (adapters["model"] == record["model"])]
    mistake = store.scalar(
        "SELECT email_id FROM predictions WHERE adapter_id = ? AND corpus = ? AND predicted <> true_label "
        "ORDER BY abs(score) DESC, email_id LIMIT 1", [adapter_id, worst["corpus"]])
    suspects = store.rows(
        "SELECT f.email_id FROM email_flags f LEFT JOIN predictions p ON p.email_id = f.email_id AND p.adapter_id = ? "
        f"WHERE f.diagnostic = '{LABEL_AUDIT}' ORDER BY p.email_id IS NULL, (p.predicted <> p.true_label) DESC, "
        "f.strength DESC, f.email_id LIMIT 1", [adapter_id])
    suspect = suspects[0][0] if suspects else None
    return Walkthrough(
        suspect_id=suspect, training_set=str(record["training_set"]), adapter_id=str(adapter_id), adapter_path=str(record["path"]),
        home_corpus=str(home["corpus"]), home_f1=float(home["f1"]), failing_corpus=str(worst["corpus"]),
        failing_f1=float(worst["f1"]), failing_n=int(worst["n"]), mistake_id=mistake,
        generalist=(str(generalist.iloc[0]["training_set"]), str(generalist.iloc[0]["path"]))
        if len(generalist) else None, generalist_id=str(generalist.iloc[0]["id"]) if len(generalist) else None)


def walkthrough_steps(store: Store, walk: Walkthrough, model: str, executor: Executor, models_dir: Path,
                      sample_size: int, max_tokens: int, seed: int = 0) -> list[tuple[str, Callable[[], bool]]]:
    """What each walk-through step shows, as (name, run) pairs; run() stores it and says whether
    anything was computed (False: already stored)."""
    from diagnostics.analyses.drivers import explain_sample

    specialist = EvaluationTarget(model, Path(walk.adapter_path))
    beside = [(walk.training_set, specialist)]
    if walk.generalist:
        beside.append((walk.generalist[0], EvaluationTarget(model, Path(walk.generalist[1]))))
    corpora = store.corpus_names()

    def stored_job(entry_name: str, target: EvaluationTarget, corpus: str) -> Callable[[], bool]:
        request = DiagnosticRequest(target, corpus, sample_size, max_tokens, seed, 8)
        entry = diagnostic(entry_name)
        return lambda: run_job(store, entry.make_job(request, models_dir), executor, progress=False).run_id is not None

    def drivers(corpus: str) -> Callable[[], bool]:
        return lambda: explain_sample(store, specialist, corpus, sample_size, WALKTHROUGH_METHOD, max_tokens, seed,
                                      executor) > 0

    # Drivers: the specialist's words on every corpus (the shortcut finder; the explanation shift)
    steps = [(f"drivers · {walk.training_set} · {corpus}", drivers(corpus)) for corpus in corpora]
    # Field reliance: the specialist beside the generalist, on every corpus
    steps += [(f"field reliance · {training_set} · {corpus}", stored_job("field-counterfactuals", target, corpus))
              for training_set, target in beside for corpus in corpora]
    steps += [("corpus fingerprints", stored_job("corpus-fingerprint", specialist, "")),
              ("nearest training emails", stored_job("nearest-training-emails", specialist, "")),
              (f"heads · {walk.failing_corpus}",
               stored_job("direct-logit-attribution", specialist, walk.failing_corpus)),
              ("label audit", lambda: run_job(store, diagnostic(LABEL_AUDIT).make_job(None, models_dir), executor,
                                              progress=False).run_id is not None)]
    return steps
