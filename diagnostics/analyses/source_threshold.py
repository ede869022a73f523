"""The threshold a practitioner would pick without target labels: tuned for F1 on the adapter's own
training corpora, on their training-split emails the adapter was not trained on (validation
emails), then applied to every test corpus. Beside F1 at 0 and the oracle threshold
(diagnostics.analyses.calibration), it says how much of an out-of-domain drop a threshold chosen at the
source recovers, which needs no email of the target at all.

Scores the validation emails with the adapter (a stratified sample of `sample_size` per training
corpus); the test scores are the adapter's stored predictions, so run it with the `--max-tokens`
the evaluation used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from data.metrics import confusion
from data.records import Email, VERDICT_THRESHOLD
from data.splits import sample_stratified
from data.store import Store
from diagnostics.analyses.calibration import best_threshold, f1_at
from diagnostics.contracts.job import Progress
from diagnostics.analyses.matrix import bootstrap_f1_interval
from diagnostics.analyses.sample_grid import ALL_CORPORA, GRID_COLUMNS, SampleDiagnostic, SamplePart
from data.scorers import training_set_missing
from models.loading import LoadedModel, read_adapter_info
from models.scoring import score_emails

SOURCE_ROW = "source (validation emails)"


def validation_ids(store: Store, training_set: str, size: int | None, seed: int) -> list[str]:
    """Per corpus of the training set: a seeded stratified sample of its training split's emails
    that are not in the training set (they were never trained on)."""
    record = store.training_set(training_set)
    if record is None:
        raise ValueError(training_set_missing(training_set, "a threshold tuned on its training corpora"))
    trained = {m.id for m in store.training_set_emails(training_set)}
    ids: list[str] = []
    for corpus in record["corpora"]:
        train = store.split_ids(corpus, "train")
        ids += sample_stratified(train[~train["id"].isin(trained)], size, seed)
    return ids


def _f1_with_interval(scores: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """F1 at the threshold and its 95% bootstrap interval; all NaN where the corpus holds one class
    (F1 is undefined there, as in the matrix)."""
    value = f1_at(scores, labels, threshold)
    if np.isnan(value):
        return value, float("nan"), float("nan")
    low, high = bootstrap_f1_interval(*confusion(scores > threshold, labels))
    return value, low, high


def source_threshold_grid(validation_scores: np.ndarray, validation_labels: np.ndarray,
                          test: pd.DataFrame) -> pd.DataFrame:
    """The F1-best threshold on the validation emails, then per test corpus (test: corpus, score,
    true_label) F1 at 0, at that threshold (95% bootstrap intervals) and at the corpus' own best
    threshold (the oracle: an upper bound, tuned on the emails it is scored on)."""
    threshold, source_f1 = best_threshold(validation_scores, validation_labels)
    n_source = len(validation_scores)
    rows = [{"row": SOURCE_ROW, "column": "threshold", "value": threshold, "low": np.nan, "high": np.nan,
             "n": n_source},
            {"row": SOURCE_ROW, "column": "F1 at source threshold", "value": source_f1, "low": np.nan,
             "high": np.nan, "n": n_source}]
    for corpus, group in test.groupby("corpus", sort=True):
        scores, labels = group["score"].to_numpy(), group["true_label"].to_numpy()
        n = len(group)
        for column, at in (("F1 at 0", VERDICT_THRESHOLD), ("F1 at source threshold", threshold)):
            value, low, high = _f1_with_interval(scores, labels, at)
            rows.append({"row": corpus, "column": column, "value": value, "low": low, "high": high, "n": n})
        rows.append({"row": corpus, "column": "oracle F1", "value": best_threshold(scores, labels)[1],
                     "low": np.nan, "high": np.nan, "n": n})
    return pd.DataFrame(rows, columns=GRID_COLUMNS)


class SourceThreshold(SampleDiagnostic):
    name = "source-threshold"
    corpus = ALL_CORPORA

    def _training_set(self) -> str:
        if self.request.target.adapter_dir is None:
            raise ValueError("source-threshold tunes an adapter's threshold on its training corpora; the zero-shot "
                             "base has none: pick a training set (--training-set)")
        return read_adapter_info(self.request.target.adapter_dir).training_set

    def sample(self, store: Store) -> list[Email]:
        r = self.request
        return store.emails_by_ids(validation_ids(store, self._training_set(), r.sample_size, r.seed))

    def context(self, store: Store) -> dict:
        """The adapter's stored test scores: the threshold is applied to them."""
        from models.loading import scorer_ref

        test = store.scores(scorer_ref(self.request.target).adapter_id)
        if test.empty:
            raise ValueError("source-threshold applies the tuned threshold to the adapter's test predictions; "
                             "evaluate the adapter first (`cli.py evaluate`)")
        return {"test": test}

    def measure(self, model: LoadedModel, part: SamplePart, on_progress: Progress | None = None):
        scores = score_emails(model, list(part.emails), self.request.max_tokens, self.request.batch_size)
        if on_progress:
            on_progress(part.size)
        return scores

    def summarize(self, emails: Sequence[Email], measured: Sequence, context: dict) -> pd.DataFrame:
        scores = np.concatenate([np.asarray(m) for m in measured])
        return source_threshold_grid(scores, np.array([m.label for m in emails]), context["test"])


def source_threshold_columns(grid: pd.DataFrame) -> tuple[float, pd.DataFrame]:
    """From a stored grid: (the tuned threshold, per test corpus source_f1 with its interval)."""
    threshold = float(grid.loc[(grid["row"] == SOURCE_ROW) & (grid["column"] == "threshold"), "value"].iloc[0])
    at = grid[(grid["row"] != SOURCE_ROW) & (grid["column"] == "F1 at source threshold")]
    return threshold, at.rename(columns={"row": "corpus", "value": "source_f1", "low": "source_f1_low",
                                         "high": "source_f1_high"})[["corpus", "source_f1", "source_f1_low",
                                                                     "source_f1_high"]]
