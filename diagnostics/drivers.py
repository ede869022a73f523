"""Corpus-level drivers: which words an adapter relies on across a sample of a test split,
and which of them are *shortcut candidates*: strong drivers that mark one corpus (any
label) rather than phishing, the signature lines and boilerplate a specialist learns.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from data.records import Email, Explanation
from data.store import Store
from diagnostics.attribution import (METHODS, CoalitionScorer, explain_gradient, explain_shap, layout_email,
                                     method_params)
from models.scoring import prompt_builder

_EDGE_PUNCTUATION = re.compile(r"^[^a-z0-9]+|[^a-z0-9]+$")


def feature_of(word: str) -> str:
    """A word's feature name: lower case, leading/trailing non-alphanumerics stripped.

    Store.feature_document_frequency splits corpus text the same way.
    """
    return _EDGE_PUNCTUATION.sub("", word.lower())


def features(explanation: Explanation) -> list[tuple[str, float]]:
    """(feature, value) per word of a word-level explanation; words without letters or digits dropped."""
    if explanation.level != "word":
        raise ValueError(f"features need a word-level explanation, not {explanation.level!r}")
    pairs = ((feature_of(explanation.text[s:e]), v) for (s, e), v in zip(explanation.spans, explanation.values))
    return [(name, float(v)) for name, v in pairs if name]


def explain_one(loaded, mail: Email, method: str, max_tokens: int, seed: int = 0) -> Explanation:
    """A word-level explanation of one email by the named method."""
    layout = layout_email(prompt_builder(loaded, max_tokens), mail)
    if method == "gradxinput":
        return explain_gradient(loaded, layout, mail.id, max_tokens)
    if method == "shap":
        return explain_shap(CoalitionScorer(loaded, layout), mail.id, loaded.adapter_id, max_tokens, "word",
                            seed=seed)
    raise ValueError(f"method must be one of {METHODS}")


def sample_test_emails(store: Store, corpus: str, size: int, seed: int) -> list[str]:
    """A seeded sample of a corpus' test split (all of it when smaller)."""
    ids = sorted(store.split_ids(corpus, "test")["id"])
    if not ids:
        raise ValueError(f"corpus {corpus!r} has no test split; ingest it first")
    rng = np.random.default_rng(seed)
    return [ids[i] for i in sorted(rng.choice(len(ids), size=min(size, len(ids)), replace=False))]


def explain_sample(store: Store, loaded, corpus: str, size: int = 200, method: str = "shap", max_tokens: int = 256,
                   seed: int = 0, on_email: Callable[[int, int], None] | None = None) -> int:
    """Explain a sample of a test split and store each email's features as it is done.

    Resumable: emails already explained with the same adapter, method and parameters are
    skipped. Returns how many were explained now. on_email(done, total) reports progress.
    """
    params = method_params(method, max_tokens, seed)
    sample = sample_test_emails(store, corpus, size, seed)
    explained = store.explained_email_ids(loaded.adapter_id, method, params)
    todo = [i for i in sample if i not in explained]
    done = len(sample) - len(todo)
    if on_email:
        on_email(done, len(sample))
    for mail in store.emails_by_ids(todo):
        explanation = explain_one(loaded, mail, method, max_tokens, seed)
        store.add_explanation(explanation, corpus, features(explanation))
        done += 1
        if on_email:
            on_email(done, len(sample))
    return len(todo)


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
