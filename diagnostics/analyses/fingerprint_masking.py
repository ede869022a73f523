"""How much of an adapter's in-domain vs out-of-domain gap its corpora's fingerprints account for:
each corpus' top fingerprint words (the corpus-fingerprint text probe, fitted on the same test
sample) are masked out of its test emails, the adapter scores them again, and per corpus the
paired bootstrap gives the F1 change (masked − original) with its 95% interval, and McNemar's p.
A gap that shrinks when fingerprints are masked was partly corpus identification.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from data.records import Email, verdict
from data.store import Store
from diagnostics.contracts.job import Progress
from diagnostics.analyses.fingerprint import top_fingerprints
from diagnostics.analyses.paired import compare_scorers
from diagnostics.analyses.sample_grid import ALL_CORPORA, GRID_COLUMNS, SampleDiagnostic, SamplePart
from models.loading import LoadedModel, read_adapter_info
from models.scoring import score_emails

MASKED_FEATURES = 10  # per corpus


def masked(mail: Email, words: Sequence[str]) -> Email:
    """The email with every whole-word occurrence of `words` removed from sender, subject and body."""
    if not words:
        return mail
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b")
    return replace(mail, sender=pattern.sub("", mail.sender), subject=pattern.sub("", mail.subject),
                   body=pattern.sub("", mail.body))


def masking_grid(emails: Sequence[Email], scores: np.ndarray, masked_scores: np.ndarray,
                 in_domain: set[str], seed: int = 0) -> pd.DataFrame:
    """Per corpus: F1, F1 with fingerprints masked, and their paired difference with its interval
    (rows named "<corpus> (in domain)" or "(out of domain)"); then the mean in- minus out-of-domain
    gap before and after masking."""
    rows, f1 = [], {}
    for corpus in dict.fromkeys(m.corpus for m in emails):
        at = [i for i, m in enumerate(emails) if m.corpus == corpus]
        labels = np.array([emails[i].label for i in at])
        after = np.array([verdict(s) for s in masked_scores[at]])
        before = np.array([verdict(s) for s in scores[at]])
        comparison = compare_scorers(labels, after, before, seed=seed)
        name = f"{corpus} ({'in' if corpus in in_domain else 'out of'} domain)"
        rows += [{"row": name, "column": "F1", "value": comparison.f1_b, "low": np.nan, "high": np.nan, "n": len(at)},
                 {"row": name, "column": "F1 masked", "value": comparison.f1_a, "low": np.nan, "high": np.nan,
                  "n": len(at)},
                 {"row": name, "column": "ΔF1 (masked − original)", "value": comparison.delta_f1,
                  "low": comparison.delta_low, "high": comparison.delta_high, "n": len(at)},
                 {"row": name, "column": "McNemar p", "value": comparison.mcnemar_p, "low": np.nan, "high": np.nan,
                  "n": len(at)}]
        f1[corpus] = (comparison.f1_b, comparison.f1_a)
    inside = [v for c, v in f1.items() if c in in_domain and not np.isnan(v[0])]
    outside = [v for c, v in f1.items() if c not in in_domain and not np.isnan(v[0])]
    if inside and outside:
        for column, k in (("gap", 0), ("gap masked", 1)):
            gap = np.mean([v[k] for v in inside]) - np.mean([v[k] for v in outside])
            rows.append({"row": "in − out of domain", "column": column, "value": float(gap), "low": np.nan,
                         "high": np.nan, "n": len(emails)})
    return pd.DataFrame(rows, columns=GRID_COLUMNS)


class FingerprintMasking(SampleDiagnostic):
    name = "fingerprint-masking"
    corpus = ALL_CORPORA
    extra_key = {"masked": MASKED_FEATURES}

    def context(self, store: Store) -> dict:
        """The corpora the adapter was trained on: in domain (none for the zero-shot base)."""
        if self.request.target.adapter_dir is None:
            return {"in_domain": set()}
        record = store.training_set(read_adapter_info(self.request.target.adapter_dir).training_set)
        return {"in_domain": set(record["corpora"]) if record else set()}


    def pair(self, emails: Sequence[Email]) -> list:
        words = top_fingerprints(emails, MASKED_FEATURES, self.request.seed)
        return [masked(m, words.get(m.corpus, [])) for m in emails]

    def measure(self, model: LoadedModel, part: SamplePart, on_progress: Progress | None = None):
        budget, batch = self.request.max_tokens, self.request.batch_size
        scores = score_emails(model, list(part.emails), budget, batch)
        masked_scores = score_emails(model, list(part.extra), budget, batch)
        if on_progress:
            on_progress(part.size)
        return scores, masked_scores

    def summarize(self, emails: Sequence[Email], measured: Sequence, context: dict) -> pd.DataFrame:
        scores = np.concatenate([m[0] for m in measured])
        masked_scores = np.concatenate([m[1] for m in measured])
        return masking_grid(emails, scores, masked_scores, context["in_domain"], self.request.seed)
