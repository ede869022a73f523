"""Corpus-level drivers: which words an adapter relies on across a sample of a test split,
and which of them are *shortcut candidates*: strong drivers that mark one corpus (any
label) rather than phishing, the signature lines and boilerplate a specialist learns.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from data.records import DiagnosticRequest, Email, EvaluationTarget, Explanation, ScorerRef
from data.settings import load_settings
from data.splits import test_sample
from data.store import Store
from diagnostics.contracts.job import EmailBatch, Executor, Plan, Progress, WorkerEnv
from diagnostics.runners.local import LocalExecutor, run_job
from diagnostics.analyses.explainers import METHODS, explainer, method_params  # noqa: F401 (METHODS: the CLI's choices)
from diagnostics.analyses.layout import layout_email
from models.classifier import Classifier
from models.loading import LoadedModel, load_model, scorer_ref
from models.scoring import prompt_builder

_EDGE_PUNCTUATION = re.compile(r"^[^a-z0-9]+|[^a-z0-9]+$")
_URL_START = re.compile(r"https?://|www\.")
_URL_HOST = re.compile(r"(?:https?://)?(?:[^/@\s]*@)?([^/:?#\s]*)")  # data.store's SQL uses the same pattern


def feature_of(word: str) -> str:
    """A word's feature name: lower case, leading/trailing non-alphanumerics stripped; a URL's is
    its host (a link-domain shortcut is one feature, not one per URL with its own query string).

    Store.feature_document_frequency splits corpus text the same way.
    """
    word = word.lower()
    if _URL_START.match(word.lstrip("(<[")):
        word = _URL_HOST.match(word.lstrip("(<["))[1]
    return _EDGE_PUNCTUATION.sub("", word)


def features(explanation: Explanation) -> list[tuple[str, float]]:
    """(feature, value) per word of a word-level explanation; words without letters or digits dropped."""
    if explanation.level != "word":
        raise ValueError(f"features need a word-level explanation, not {explanation.level!r}")
    pairs = ((feature_of(explanation.text[s:e]), v) for (s, e), v in zip(explanation.spans, explanation.values))
    return [(name, float(v)) for name, v in pairs if name]


def explain_one(loaded: Classifier, mail: Email, method: str, max_tokens: int, seed: int = 0) -> Explanation:
    """A word-level explanation of one email by the named explainer (diagnostics.analyses.explainers.EXPLAINERS)."""
    return explainer(method)(loaded, layout_email(prompt_builder(loaded, max_tokens), mail), mail.id, max_tokens,
                             seed)


@dataclass(frozen=True)
class ExplainBatch(EmailBatch):
    """Work item: word-level explanations of a few test emails by one scorer and method."""

    method: str
    max_tokens: int
    seed: int


@dataclass
class ExplainJob:
    """A seeded sample of a corpus' test split explained and its word features stored (the
    Drivers page's input). Resumable: emails explained with the same scorer, method and
    parameters are skipped."""

    target: EvaluationTarget
    corpus: str
    size: int = 200
    method: str = "shap"
    max_tokens: int = 256
    seed: int = 0
    emails_per_item: int | None = 1
    name = "explain"

    @property
    def description(self) -> str:
        return f"explain {self.corpus}"

    def plan(self, store: Store) -> Plan:
        explainer(self.method)  # an unknown method fails before anything runs
        scorer = scorer_ref(self.target)
        params = method_params(self.method, self.max_tokens, self.seed)
        sample = test_sample(store, self.corpus, self.size, self.seed)
        if not sample:
            raise ValueError(f"corpus {self.corpus!r} has no test split; ingest it first")
        explained = store.explained_email_ids(scorer.adapter_id, self.method, params)
        todo = [i for i in sample if i not in explained]
        step = self.emails_per_item or max(len(todo), 1)
        items = [ExplainBatch(scorer, self.corpus, tuple(store.emails_by_ids(todo[i:i + step])), self.method,
                              self.max_tokens, self.seed) for i in range(0, len(todo), step)]
        run_params = {"corpus": self.corpus, "adapter": scorer.adapter_id, "sample": self.size,
                      "method": self.method, "max_tokens": self.max_tokens}
        return Plan(items, run_params, {"fresh": len(todo)}, done=len(sample) - len(todo))

    def open(self, scorer: ScorerRef, adapter_dir: Path | None, env: WorkerEnv) -> LoadedModel:
        return load_model(scorer.model, adapter_dir, Path(env.models_dir), env.device, scorer.quantize)

    def run(self, item: ExplainBatch, model: LoadedModel, on_progress: Progress | None = None) -> list:
        done = []
        for mail in item.emails:
            explanation = explain_one(model, mail, item.method, item.max_tokens, item.seed)
            done.append((explanation, features(explanation)))
            if on_progress:
                on_progress(1)
        return done

    def shard_rows(self, item: ExplainBatch, records: list, run_id: str) -> list[dict]:
        return [Store.explanation_record(e, item.corpus, f) for e, f in records]

    def ingest_shard(self, store: Store, run_id: str, plan: Plan, item: ExplainBatch, path: Path) -> list:
        store.add_explanation_shards([path])
        return []

    def ingest(self, store: Store, run_id: str, plan: Plan, item: ExplainBatch, records: list) -> list:
        for explanation, feats in records:
            store.add_explanation(explanation, item.corpus, feats)
        return []


def explain_sample(store: Store, target: EvaluationTarget, corpus: str, size: int = 200, method: str = "shap",
                   max_tokens: int = 256, seed: int = 0, executor: Executor | None = None,
                   on_email: Callable[[int, int], None] | None = None, progress: bool = False,
                   models_dir: Path | None = None) -> int:
    """Explain a sample of a test split (ExplainJob) on the executor (default: this process,
    models from `models_dir`); returns how many were explained now. on_email(done, total)."""
    executor = executor or LocalExecutor(models_dir or load_settings().models_dir)
    job = ExplainJob(target, corpus, size, method, max_tokens, seed, executor.part_size("explain"))
    return run_job(store, job, executor, progress, on_email).plan.state["fresh"]


@dataclass(frozen=True)
class ShortcutRule:
    """When a driver counts as a shortcut candidate."""

    top: int = 40  # drivers considered, by |total attribution|
    min_share: float = 0.05  # it occurs in at least this share of one corpus' emails...
    min_ratio: float = 5.0  # ...and this many times more often there than in the other corpora


def shortcut_candidates(drivers: pd.DataFrame, shares: pd.DataFrame, rule: ShortcutRule = ShortcutRule()) -> pd.DataFrame:
    """Strong drivers concentrated in one corpus regardless of label.

    drivers: feature, total, mean_value (Store.drivers); shares: corpus, feature, share
    (Store.feature_document_frequency). Returns the top drivers with the corpus where each
    is most frequent, its share there, the mean share elsewhere, their ratio and the flag.
    """
    top = drivers.reindex(drivers["total"].abs().sort_values(ascending=False).index).head(rule.top)
    wide = shares.pivot_table(index="feature", columns="corpus", values="share", fill_value=0.0)
    rows = []
    for record in top.itertuples():
        if record.feature not in wide.index or wide.shape[1] < 2:
            continue
        by_corpus = wide.loc[record.feature]
        home = by_corpus.idxmax()
        elsewhere = float(by_corpus.drop(home).mean())
        ratio = float(by_corpus[home]) / max(elsewhere, 1e-3)
        rows.append({"feature": record.feature, "total": record.total, "mean_value": record.mean_value,
                     "corpus": home, "share_there": float(by_corpus[home]), "share_elsewhere": elsewhere,
                     "ratio": ratio,
                     "shortcut": bool(by_corpus[home] >= rule.min_share and ratio >= rule.min_ratio)})
    return pd.DataFrame(rows, columns=["feature", "total", "mean_value", "corpus", "share_there",
                                       "share_elsewhere", "ratio", "shortcut"])


def explanation_shift(first: pd.DataFrame, second: pd.DataFrame, top: int | None = None) -> pd.DataFrame:
    """Two explanation sweeps' drivers (Store.drivers frames: an adapter in domain vs out of domain,
    or two adapters on one split) side by side, ranked by how much each feature's mean attribution
    per explained email changed (second − first). A feature absent from one sweep counts 0 there,
    as it does in that sweep's own mean."""
    columns = ["feature", "emails", "mean_value"]
    joined = first[columns].merge(second[columns], on="feature", how="outer", suffixes=("_first", "_second"))
    joined = joined.fillna({"emails_first": 0, "emails_second": 0, "mean_value_first": 0.0,
                            "mean_value_second": 0.0}).astype({"emails_first": int, "emails_second": int})
    joined["change"] = joined["mean_value_second"] - joined["mean_value_first"]
    ranked = joined.reindex(joined["change"].abs().sort_values(ascending=False, kind="stable").index)
    return (ranked.head(top) if top else ranked).reset_index(drop=True)


def job_for_request(request: DiagnosticRequest, models_dir: Path, emails_per_item: int | None = None) -> ExplainJob:
    """The registry's way in (`cli.py diagnose drivers`): SHAP over a seeded sample of the corpus."""
    return ExplainJob(request.target, request.corpus, request.sample_size, "shap", request.max_tokens, request.seed,
                      emails_per_item or 1)
