"""Near-duplicate emails across the store (MinHash with locality-sensitive hashing, datasketch).

Ingest already drops exact duplicates (same content hash). This finds the same campaign,
newsletter or template sent again with small edits: word 5-gram shingles of the normalised
subject and body (lower case, words only, so case, punctuation, spacing and line breaks do not
count), MinHash signatures, LSH candidates, then each candidate pair kept only if its exact
Jaccard similarity reaches the threshold (LSH only proposes). Emails too short to have a
signature of their own (fewer than MIN_WORDS words) are left out: two "thanks!" replies are not a
leak.

A matrix cell's test emails that near-duplicate an email of the scorer's own training set make an
out-of-domain cell partly recall of seen mail: `leakage_by_cell` gives their share and F1 without
them, and training sets can be built without them (`near_duplicates_of_test_emails`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from data.metrics import confusion, matrix_value, wilson_interval
from data.records import Email, ScorerRef
from data.schema import LEAKED_SQL, NEAR_DUPLICATES
from data.store import Store
from diagnostics.analyses.label_audit import SUMMARY_COLUMNS, every_email_id
from diagnostics.contracts.job import ALL_CORPORA, EmailBatch, Plan, Progress

SHINGLE_WORDS = 5
MIN_WORDS = 12
THRESHOLD = 0.7  # exact Jaccard of shingle sets; measured in benchmarks/bench_audits.py
NUM_PERM = 128
SCORER = ScorerRef(model="minhash-lsh", adapter_id=NEAR_DUPLICATES)
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def shingles(text: str, k: int = SHINGLE_WORDS) -> set[str]:
    """The word k-grams of the lower-cased text's words (empty below MIN_WORDS words)."""
    words = _WORD.findall(text.lower())
    if len(words) < MIN_WORDS:
        return set()
    return {" ".join(words[i:i + k]) for i in range(len(words) - k + 1)}


def email_text(email: Email) -> str:
    return f"{email.subject}\n{email.body}"


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def near_duplicate_pairs(emails: Sequence[Email], threshold: float = THRESHOLD, num_perm: int = NUM_PERM,
                         seed: int = 1, on_progress: Progress | None = None) -> pd.DataFrame:
    """Every pair of emails whose shingle sets' Jaccard similarity is at least `threshold`:
    email_a, email_b (a < b by position), corpus_a, corpus_b, similarity."""
    from datasketch import MinHash, MinHashLSH

    sets = [shingles(email_text(m)) for m in emails]  # (hashing them all at once is most of the time)
    keep = [i for i, s in enumerate(sets) if s]
    signatures = MinHash.bulk([[s.encode() for s in sets[i]] for i in keep], num_perm=num_perm, seed=seed)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    rows = []
    for done, (i, signature) in enumerate(zip(keep, signatures)):
        for j in lsh.query(signature):
            similarity = jaccard(sets[i], sets[j])
            if similarity >= threshold:
                rows.append({"email_a": emails[j].id, "email_b": emails[i].id, "corpus_a": emails[j].corpus,
                             "corpus_b": emails[i].corpus, "similarity": similarity})
        lsh.insert(i, signature)
        if on_progress and done % 1000 == 999:
            on_progress(1000)
    if on_progress:
        on_progress(len(keep) % 1000 + len(emails) - len(keep))
    return pd.DataFrame(rows, columns=["email_a", "email_b", "corpus_a", "corpus_b", "similarity"])


def pair_flags(pairs: pd.DataFrame) -> pd.DataFrame:
    """Each pair as two flags (one per email, the other as its partner), for the store."""
    forward = pairs.rename(columns={"email_a": "email_id", "email_b": "partner_id", "corpus_a": "corpus",
                                    "corpus_b": "partner_corpus"})
    backward = pairs.rename(columns={"email_b": "email_id", "email_a": "partner_id", "corpus_b": "corpus",
                                     "corpus_a": "partner_corpus"})
    both = pd.concat([forward, backward], ignore_index=True)
    return pd.DataFrame({"email_id": both["email_id"], "corpus": both["corpus"], "partner_id": both["partner_id"],
                         "strength": both["similarity"],
                         "evidence": [{"partner_corpus": c, "jaccard": round(s, 4)}
                                      for c, s in zip(both["partner_corpus"], both["similarity"])]})


def corpus_summaries(emails: Sequence[Email], pairs: pd.DataFrame) -> pd.DataFrame:
    """Per corpus: the share of its emails with a near-duplicate in another corpus (95% Wilson interval)."""
    across = pairs[pairs["corpus_a"] != pairs["corpus_b"]]
    flagged = set(across["email_a"]) | set(across["email_b"])
    frame = pd.DataFrame({"corpus": [m.corpus for m in emails], "flag": [m.id in flagged for m in emails]})
    rows = []
    for corpus, group in frame.groupby("corpus", sort=True):
        n, k = len(group), int(group["flag"].sum())
        low, high = wilson_interval(k, n)
        rows.append({"corpus": corpus, "n": n, "flagged": k, "candidates": None, "estimate": k / n, "low": low,
                     "high": high})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


# ---------------------------------------------------------------- what the pairs do to the matrix


def leakage_by_cell(store: Store) -> pd.DataFrame:
    """Per scorer × corpus cell: test emails scored, how many near-duplicate an email of the
    scorer's training set (share), F1 as stored and F1 without them (and the difference)."""
    rows = store.query(f"SELECT p.adapter_id, p.corpus, p.predicted, p.true_label, {LEAKED_SQL} AS leaked "
                       "FROM predictions p ORDER BY p.adapter_id, p.corpus")
    return leakage_table(rows)


def _f1(predicted, labels) -> float:
    """The matrix's value (data.metrics): F1, or recall where the cell holds positives only."""
    value = matrix_value(*confusion(predicted, labels))
    return float("nan") if value is None else value


def leakage_table(rows: pd.DataFrame) -> pd.DataFrame:
    """From (adapter_id, corpus, predicted, true_label, leaked) rows: one row per cell."""
    out = []
    for (scorer, corpus), cell in rows.groupby(["adapter_id", "corpus"], sort=True):
        leaked = cell["leaked"].astype(bool).to_numpy()
        predicted, labels = cell["predicted"].to_numpy(), cell["true_label"].to_numpy()
        f1_all = _f1(predicted, labels)
        f1_without = _f1(predicted[~leaked], labels[~leaked])
        out.append({"adapter_id": scorer, "corpus": corpus, "n": len(cell), "near_duplicates": int(leaked.sum()),
                    "share": float(leaked.mean()), "f1": f1_all, "f1_without": f1_without,
                    "delta_f1": f1_without - f1_all})
    return pd.DataFrame(out, columns=["adapter_id", "corpus", "n", "near_duplicates", "share", "f1", "f1_without",
                                      "delta_f1"])


def near_duplicates_of_test_emails(store: Store, corpora: Sequence[str]) -> set[str]:
    """Training-split emails of `corpora` that near-duplicate an email in another corpus' test split
    (what a training set can be built without)."""
    rows = store.query(
        f"""SELECT DISTINCT f.email_id FROM email_flags f
            JOIN splits a ON a.email_id = f.email_id AND a.split = 'train' AND a.corpus IN (SELECT unnest(?))
            JOIN splits b ON b.email_id = f.partner_id AND b.split = 'test' AND b.corpus <> a.corpus
            WHERE f.diagnostic = '{NEAR_DUPLICATES}'""", [list(corpora)])
    return set(rows["email_id"])


# ---------------------------------------------------------------- the job (plan → run → ingest)


@dataclass(frozen=True)
class FoundPairs:
    pairs: pd.DataFrame
    summaries: pd.DataFrame


class NearDuplicateAudit:
    """Finds near-duplicate pairs over every email of the store in one work item."""

    name = NEAR_DUPLICATES
    description = "near-duplicates"

    def __init__(self, threshold: float = THRESHOLD, num_perm: int = NUM_PERM) -> None:
        self.threshold, self.num_perm = threshold, num_perm

    def params(self, emails: int) -> str:
        """The result's key: the method's settings and how many emails it compared."""
        return json.dumps({"threshold": self.threshold, "num_perm": self.num_perm, "shingle_words": SHINGLE_WORDS,
                           "min_words": MIN_WORDS, "emails": emails}, sort_keys=True)

    def plan(self, store: Store) -> Plan | None:
        ids = every_email_id(store)
        params = self.params(len(ids))
        if store.has_flags(self.name, params):
            return None  # the same emails were compared with the same settings
        return Plan([EmailBatch(SCORER, ALL_CORPORA, tuple(store.emails_by_ids(ids)))],
                    {"diagnostic": self.name, "params": params})

    def open(self, scorer, adapter_dir, env):
        return None

    def run(self, item: EmailBatch, model, on_progress: Progress | None = None) -> FoundPairs:
        pairs = near_duplicate_pairs(item.emails, self.threshold, self.num_perm, on_progress=on_progress)
        return FoundPairs(pairs, corpus_summaries(item.emails, pairs))

    def ingest(self, store: Store, run_id: str, plan: Plan, item: EmailBatch, records: FoundPairs) -> list:
        store.replace_flags(run_id, self.name, list(records.summaries["corpus"]), plan.run_params["params"],
                            pair_flags(records.pairs), records.summaries)
        return []


def job_for_request(request, models_dir, emails_per_item=None) -> NearDuplicateAudit:
    """The registry's builder: the audit covers the whole store, whatever the request names."""
    return NearDuplicateAudit()


def share_of_pairs(pairs: pd.DataFrame, planted: set[frozenset]) -> dict:
    """Precision and recall of found pairs against planted ones (sets of two email ids)."""
    found = {frozenset((a, b)) for a, b in zip(pairs["email_a"], pairs["email_b"])}
    hit = len(found & planted)
    return {"found": len(found), "planted": len(planted), "true_positives": hit,
            "precision": hit / len(found) if found else float("nan"),
            "recall": hit / len(planted) if planted else float("nan")}

