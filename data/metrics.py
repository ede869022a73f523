"""The matrix metrics, defined once for SQL (data.store.METRICS_SQL) and Python (the head
sweep's ΔF1); tests/data/test_metrics.py checks the two agree on every confusion table.

F1 and precision are only defined where the test sample holds both classes; where it holds
only positives, the matrix shows recall instead (`matrix_value`). The verdict threshold is
data.records.VERDICT_THRESHOLD.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from data.records import VERDICT_THRESHOLD

Z95 = NormalDist().inv_cdf(0.975)  # 1.95996…: the two-sided 95% normal quantile

# SQL over columns tp, fp, fn, tn (counts); NULL where undefined.
_BOTH_CLASSES = "(tp + fn) > 0 AND (tn + fp) > 0"
RECALL_SQL = "CASE WHEN tp + fn > 0 THEN tp / (tp + fn) END"
PRECISION_SQL = (f"CASE WHEN {_BOTH_CLASSES} AND tp + fp > 0 THEN tp / (tp + fp) "
                 f"WHEN {_BOTH_CLASSES} THEN 0.0 END")
F1_SQL = f"CASE WHEN {_BOTH_CLASSES} THEN 2.0 * tp / (2 * tp + fp + fn) END"


# An adapter has collapsed when it gives one verdict to at least this share of its test emails
# although their labels are mixed (between the two bounds positive): it learnt the label prior,
# not the task. Judged over every test email it scored, at least COLLAPSE_MIN_EMAILS of them.
COLLAPSED_SHARE = 0.98
MIXED_LABELS = (0.1, 0.9)
COLLAPSE_MIN_EMAILS = 20


def collapse_sentence(training_set: str, adapter_id: str, n: int, positive_share: float, label_share: float) -> str:
    """What a collapsed adapter does and what to change, in one sentence."""
    verdict, share = ("phishing", positive_share) if positive_share >= 0.5 else ("legitimate", 1 - positive_share)
    return (f"{training_set} ({adapter_id}) collapsed: it calls {share:.0%} of its {n} test emails {verdict}, though "
            f"{label_share:.0%} of them are phishing. Retrain it with a lower learning rate (--lr, e.g. half), more "
            "epochs, or more training emails, and check the training set holds both labels in similar numbers.")


def confusion(predicted: np.ndarray, labels: np.ndarray) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) of 0/1 verdicts against 0/1 labels."""
    predicted, labels = np.asarray(predicted).astype(bool), np.asarray(labels) == 1
    return (int((predicted & labels).sum()), int((predicted & ~labels).sum()), int((~predicted & labels).sum()),
            int((~predicted & ~labels).sum()))


def recall(tp: int, fp: int, fn: int, tn: int) -> float | None:
    return tp / (tp + fn) if tp + fn > 0 else None


def precision(tp: int, fp: int, fn: int, tn: int) -> float | None:
    if not (tp + fn > 0 and tn + fp > 0):
        return None
    return tp / (tp + fp) if tp + fp > 0 else 0.0


def f1(tp: int, fp: int, fn: int, tn: int) -> float | None:
    return 2.0 * tp / (2 * tp + fp + fn) if tp + fn > 0 and tn + fp > 0 else None


def matrix_value(tp: int, fp: int, fn: int, tn: int) -> float | None:
    """What a matrix cell shows: F1, or recall where the sample has positives only (None: neither)."""
    value = f1(tp, fp, fn, tn)
    return value if value is not None else recall(tp, fp, fn, tn)


def f1_at_zero(scores: np.ndarray, labels: np.ndarray) -> float:
    """The matrix value (F1, else recall) of the verdicts at the product's threshold; NaN where
    neither is defined (a sample of legitimate emails only)."""
    value = matrix_value(*confusion(np.asarray(scores) > VERDICT_THRESHOLD, labels))
    return math.nan if value is None else value


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (sound at 0 and 1, unlike the normal one)."""
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (0.0 if successes == 0 else max(0.0, centre - half)), (1.0 if successes == n else min(1.0, centre + half))
