"""Nearest training emails: for any email, the training emails of the adapter's own training set
that are closest to it in the scorer's own representation (the final hidden state at the answer
position, cosine similarity), with their label, corpus and the adapter's score on them. "It was
called legitimate because it looks like these ham emails from that corpus."

The index is a stored job (diagnostics.runners.local's shape): each training email's state and score
once per (adapter, training set), resumable, on either executor; a query is one forward pass for
the email asked about and one SQL ranking (data.store.nearest_training_emails).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from data.records import DiagnosticRequest, Email
from data.store import Store
from diagnostics.contracts.job import EmailBatch, Plan, Progress, WorkerEnv
from models.classifier import Classifier
from data.scorers import training_set_missing
from models.loading import LoadedModel, load_model, read_adapter_info, scorer_ref
from models.scoring import answer_states


class NeighbourIndex:
    """The index job: every email of the adapter's training set → (state, score) rows."""

    name = "nearest-training-emails"

    def __init__(self, request: DiagnosticRequest, models_dir: Path, emails_per_item: int | None = None) -> None:
        self.request, self.models_dir = request, Path(models_dir)
        self.emails_per_item = emails_per_item or 64  # stored as it goes: an interrupted index resumes

    @property
    def description(self) -> str:
        return f"index of {self.training_set()}"

    def training_set(self) -> str:
        if self.request.target.adapter_dir is None:
            raise ValueError("the zero-shot base model has no training set to search: pick an adapter (--training-set)")
        return read_adapter_info(self.request.target.adapter_dir).training_set

    def plan(self, store: Store) -> Plan | None:
        scorer, training_set = scorer_ref(self.request.target), self.training_set()
        emails = store.training_set_emails(training_set)
        if not emails:
            raise ValueError(training_set_missing(training_set, "the nearest-training-emails index"))
        indexed = store.indexed_email_ids(scorer.adapter_id, training_set)
        todo = [m for m in emails if m.id not in indexed]
        if not todo:
            return None
        step = self.emails_per_item
        items = [EmailBatch(scorer, training_set, tuple(todo[i:i + step])) for i in range(0, len(todo), step)]
        return Plan(items, {"diagnostic": self.name, "adapter": scorer.adapter_id, "training_set": training_set},
                    done=len(emails) - len(todo))

    def open(self, scorer, adapter_dir: Path | None, env: WorkerEnv) -> LoadedModel:
        return load_model(scorer.model, adapter_dir, Path(env.models_dir), env.device, scorer.quantize)

    def run(self, item: EmailBatch, model: LoadedModel, on_progress: Progress | None = None):
        scores, states = answer_states(model, item.emails, self.request.max_tokens, self.request.batch_size,
                                       on_batch=on_progress)
        return [m.id for m in item.emails], scores, states

    def ingest(self, store: Store, run_id: str, plan: Plan, item: EmailBatch, records) -> list:
        ids, scores, states = records
        store.add_training_vectors(item.scorer.adapter_id, item.corpus, ids, scores, unit_rows(states))
        return []


def unit_rows(states: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (cosine similarity becomes a dot product; a zero row stays zero)."""
    norms = np.linalg.norm(states, axis=1, keepdims=True)
    return states / np.where(norms > 0, norms, 1.0)


def query_vector(classifier: Classifier, mail: Email, max_tokens: int) -> np.ndarray:
    """An email's unit-length answer-position state: what the index is searched with."""
    return unit_rows(answer_states(classifier, [mail], max_tokens, 1)[1])[0]


def nearest_training_emails(store: Store, classifier: Classifier, mail: Email, training_set: str, max_tokens: int,
                            k: int = 5) -> pd.DataFrame:
    """The k training emails nearest to `mail` in the classifier's answer-position state (cosine),
    with similarity, label, corpus, subject and the adapter's score; empty if no index is stored."""
    return store.nearest_training_emails(classifier.adapter_id, training_set, query_vector(classifier, mail,
                                                                                           max_tokens), k)
