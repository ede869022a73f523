"""Is it the model or the label? Confident learning (cleanlab) over out-of-sample probabilities.

Every email of the store gets a probability of phishing from scorers that never trained on it:
a bag of words cross-validated over the whole store (folds stratified by corpus and label, so
each email is scored by a model that saw its corpus but not it), averaged with the stored scores
of the LoRA adapters whose training set does not hold it (a logit difference read as log-odds;
collapsed adapters left out). Confident learning then flags the emails whose given label the
probabilities confidently contradict, with per-class thresholds learned over the store (so a
corpus with one class is audited too). Per corpus: the flagged share, confident learning's estimate
of the label-error rate, with a 95% Wilson interval over the corpus' emails (it covers which emails
the corpus happens to hold, not the scorers' own error), beside the share whose out-of-sample
verdict contradicts the label ("candidates"). The estimate is conservative: on real Ling-Spam mail
with 3% of labels flipped on purpose it flagged 16 of the 30 flips and nothing else, while 29 of
them were among the 32 candidates (benchmarks/bench_audits.py); read the true rate as lying
between the two. Each suspect carries its evidence: the probability against its label, which
scorers agree, its nearest emails' labels.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from data.metrics import wilson_interval
from data.records import Email, ScorerRef
from data.schema import LABEL_AUDIT
from data.store import Store
from diagnostics.contracts.job import ALL_CORPORA, EmailBatch, Plan, Progress

FOLDS = 5
SUMMARY_COLUMNS = ["corpus", "n", "flagged", "candidates", "estimate", "low", "high"]
NEIGHBOURS = 5
SCORER = ScorerRef(model="tfidf-lr", adapter_id=LABEL_AUDIT)  # what the job "runs on": no model to load


def cross_validated_bag_of_words(texts: Sequence[str], labels: np.ndarray, strata: Sequence[str],
                                 folds: int = FOLDS, seed: int = 0, on_progress: Progress | None = None) -> np.ndarray:
    """P(phishing) of each text from a TF-IDF + logistic regression fitted on the other folds."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import Pipeline

    pipeline = Pipeline([("tfidf", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True,
                                                   max_features=100_000)),
                         ("lr", LogisticRegression(C=4.0, class_weight="balanced", max_iter=2000, random_state=seed))])
    # Stratify by corpus and label: each fold's model has seen every corpus in both classes.
    strata = np.asarray([f"{s}|{y}" for s, y in zip(strata, labels)])
    counts = pd.Series(strata).value_counts()
    strata = np.where(pd.Series(strata).map(counts).to_numpy() < folds, "rare", strata)
    texts = np.asarray(list(texts), dtype=object)
    out = np.empty(len(labels))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(texts, strata):
        model = pipeline.fit(texts[train], labels[train])
        out[test] = model.predict_proba(texts[test])[:, 1]
        if on_progress:
            on_progress(len(test))
    return out


def combined_probability(bow: np.ndarray, llm: Sequence[Sequence[float]]) -> np.ndarray:
    """The bag of words' probability averaged with the mean of the adapters' (where any scored the email)."""
    llm_mean = np.array([np.mean(p) if len(p) else np.nan for p in llm])
    return np.where(np.isnan(llm_mean), bow, (bow + llm_mean) / 2)


@dataclass(frozen=True)
class AuditedLabels:
    """The label audit's result: per-email flags (ranked) and per-corpus summaries."""

    flags: pd.DataFrame  # email_id, corpus, partner_id, strength, evidence
    summaries: pd.DataFrame  # SUMMARY_COLUMNS


def confident_learning(labels: np.ndarray, probability: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(issue mask, label quality) from cleanlab: the emails confident learning estimates to be
    mislabeled (its calibrated count of off-diagonal emails, pruned by margin: cleanlab's default)
    and each email's self-confidence (the probability of its given label)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    probs = np.column_stack([1 - probability, probability]).clip(1e-6, 1 - 1e-6)
    probs = probs / probs.sum(axis=1, keepdims=True)
    if len(np.unique(labels)) < 2:  # confident learning learns a threshold per class
        raise ValueError("the label audit needs emails of both labels in the store")
    mask = find_label_issues(labels, probs, filter_by="prune_by_noise_rate", n_jobs=1)
    quality = get_label_quality_scores(labels, probs, method="self_confidence")
    return np.asarray(mask, dtype=bool), np.asarray(quality)


def nearest_labels(texts: Sequence[str], rows: np.ndarray, k: int = NEIGHBOURS, chunk: int = 256) -> list[list[int]]:
    """For each of `rows`: the indices of its k most similar other texts (TF-IDF cosine)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not len(rows):
        return []
    matrix = TfidfVectorizer(sublinear_tf=True, min_df=1, max_features=100_000).fit_transform(texts)
    out: list[list[int]] = []
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        sims = (matrix[part] @ matrix.T).toarray()
        sims[np.arange(len(part)), part] = -1.0  # never one's own neighbour
        top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        out += [list(map(int, t)) for t in top]
    return out


def audit_labels(emails: Sequence[Email], llm: Sequence[Sequence[tuple[str, float]]] | None = None,
                 seed: int = 0, folds: int = FOLDS, on_progress: Progress | None = None) -> AuditedLabels:
    """The label audit over `emails` (every corpus together); llm[i]: (scorer id, P(phishing)) of the
    adapters that never trained on emails[i]."""
    from models.scoring import render_email

    llm = llm or [[] for _ in emails]
    texts = [render_email(m) for m in emails]
    labels = np.array([m.label for m in emails], dtype=int)
    corpora = np.array([m.corpus for m in emails])
    bow = cross_validated_bag_of_words(texts, labels, corpora, folds, seed, on_progress)
    probability = combined_probability(bow, [[p for _, p in row] for row in llm])
    mask, quality = confident_learning(labels, probability)
    suspects = np.flatnonzero(mask)
    suspects = suspects[np.argsort(quality[suspects], kind="stable")]  # most likely wrong first
    neighbours = nearest_labels(texts, suspects)
    flags = []
    for i, near in zip(suspects, neighbours):
        other = 1 - labels[i]
        verdicts = [{"scorer": s, "p_phishing": round(p, 4)} for s, p in llm[i]]
        flags.append({
            "email_id": emails[i].id, "corpus": corpora[i], "partner_id": "", "strength": float(1 - quality[i]),
            "evidence": {
                "given_label": int(labels[i]), "p_given_label": round(float(quality[i]), 4),
                "p_phishing": round(float(probability[i]), 4), "bag_of_words_p_phishing": round(float(bow[i]), 4),
                "adapters": verdicts,
                "adapters_against_label": sum((v["p_phishing"] > 0.5) == bool(other) for v in verdicts),
                "neighbours": [{"email_id": emails[j].id, "corpus": corpora[j], "label": int(labels[j])} for j in near],
                "neighbours_against_label": sum(int(labels[j] == other) for j in near),
            }})
    summaries = []
    for corpus in sorted(set(corpora)):
        inside = corpora == corpus
        n, flagged = int(inside.sum()), int(mask[inside].sum())
        low, high = wilson_interval(flagged, n)
        summaries.append({"corpus": corpus, "n": n, "flagged": flagged,
                          "candidates": int(((probability[inside] > 0.5) != labels[inside]).sum()),
                          "estimate": flagged / n, "low": low, "high": high})
    return AuditedLabels(pd.DataFrame(flags, columns=["email_id", "corpus", "partner_id", "strength", "evidence"]),
                         pd.DataFrame(summaries, columns=SUMMARY_COLUMNS))


def out_of_sample_adapter_probabilities(store: Store) -> dict[str, list[tuple[str, float]]]:
    """Per email: (adapter id, P(phishing)) of every stored adapter prediction whose adapter's
    training set does not hold the email; collapsed adapters (one verdict for everything) left out."""
    collapsed = list(store.collapsed_scorers()["adapter_id"])
    rows = store.query(
        "SELECT p.email_id, p.adapter_id, 1 / (1 + exp(-p.score)) AS p_phishing FROM predictions p "
        "JOIN adapters a ON a.id = p.adapter_id WHERE p.adapter_id NOT IN (SELECT unnest(?)) AND NOT EXISTS "
        "(SELECT 1 FROM training_set_emails t WHERE t.training_set = a.training_set AND t.email_id = p.email_id) "
        "ORDER BY p.email_id, p.adapter_id", [collapsed or [""]])
    out: dict[str, list[tuple[str, float]]] = {}
    for email_id, adapter_id, p in rows.itertuples(index=False):
        out.setdefault(email_id, []).append((adapter_id, float(p)))
    return out


# ---------------------------------------------------------------- the job (plan → run → ingest)


def every_email_id(store: Store) -> list[str]:
    """The ids of every email of the store (what the audits of the emails cover), or a clear error."""
    ids = list(store.query("SELECT id FROM emails ORDER BY id")["id"])
    if not ids:
        raise ValueError("the store holds no emails: ingest corpora first")
    return ids


@dataclass(frozen=True)
class AuditItem(EmailBatch):
    """Every email of the store, with the out-of-sample adapter probabilities of each."""

    llm: tuple = field(default=())  # per email: ((adapter id, P(phishing)), ...)


class LabelAudit:
    """Audits every email of the store in one work item (confident learning needs them together)."""

    name = LABEL_AUDIT
    description = "label audit"

    def __init__(self, seed: int = 0, folds: int = FOLDS) -> None:
        self.seed, self.folds = seed, folds

    def params(self, emails: int, predictions: int) -> str:
        """The result's key: the method, and the store it audited (its emails and adapter predictions)."""
        return json.dumps({"folds": self.folds, "seed": self.seed, "bag_of_words": "tfidf-lr 1-2 grams",
                           "emails": emails, "adapter_predictions": predictions}, sort_keys=True)

    def plan(self, store: Store) -> Plan | None:
        ids = every_email_id(store)
        adapters = out_of_sample_adapter_probabilities(store)
        params = self.params(len(ids), sum(map(len, adapters.values())))
        if store.has_flags(self.name, params):
            return None  # the store has not changed since this audit ran
        emails = store.emails_by_ids(ids)
        llm = tuple(tuple(adapters.get(m.id, ())) for m in emails)
        return Plan([AuditItem(SCORER, ALL_CORPORA, tuple(emails), llm)],
                    {"diagnostic": self.name, "params": params})

    def open(self, scorer, adapter_dir, env):
        return None

    def run(self, item: AuditItem, model, on_progress: Progress | None = None) -> AuditedLabels:
        return audit_labels(item.emails, [list(row) for row in item.llm], self.seed, self.folds, on_progress)

    def ingest(self, store: Store, run_id: str, plan: Plan, item: AuditItem, records: AuditedLabels) -> list:
        store.replace_flags(run_id, self.name, list(records.summaries["corpus"]), plan.run_params["params"],
                            records.flags, records.summaries)
        return []


def job_for_request(request, models_dir, emails_per_item=None) -> LabelAudit:
    """The registry's builder: the audit covers the whole store, whatever the request names."""
    return LabelAudit(seed=getattr(request, "seed", 0) or 0)

