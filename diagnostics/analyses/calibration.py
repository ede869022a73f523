"""Is it the threshold? Calibration and threshold transfer of one scorer on each corpus, from the
scores the store already holds (no model runs).

A score is logit phishing − logit legitimate, so sigmoid(score) is the probability the
classifier gives "phishing/spam" between its two label words. Per corpus:

- reliability: predicted probability against the observed rate of phishing, in equal-width
  bins, and the expected calibration error (ECE: the bins' |gap| weighted by their share);
- F1 at the product's threshold (score 0), at the best threshold for that corpus (the
  oracle: an upper bound no deployment gets), and after re-tuning the threshold on k% of the
  corpus' labelled test emails, scored on the other (100 − k)% (mean and 95% range over
  seeded repeats; the curve over k). The oracle minus F1 at 0 bounds how much of an out-of-
  domain drop a threshold could recover; the re-tuning curve says how many labelled target
  emails it takes.

Where a corpus' sample holds one class only, F1 is undefined and so are its threshold rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from data.metrics import confusion, f1
from data.records import VERDICT_THRESHOLD

BINS = 10
RETUNE_FRACTIONS = (0.05, 0.1, 0.2, 0.5)
REPEATS = 200


def probability(scores: np.ndarray) -> np.ndarray:
    """P(phishing/spam) from scores (logit differences)."""
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(scores, dtype=float), -50, 50)))


def reliability(scores: np.ndarray, labels: np.ndarray, bins: int = BINS) -> pd.DataFrame:
    """Per non-empty probability bin: its range, mean predicted probability, observed phishing rate, n."""
    p, y = probability(scores), np.asarray(labels, dtype=float)
    index = np.minimum((p * bins).astype(int), bins - 1)
    rows = [{"low": b / bins, "high": (b + 1) / bins, "predicted": float(p[index == b].mean()),
             "observed": float(y[index == b].mean()), "n": int((index == b).sum())}
            for b in range(bins) if (index == b).any()]
    return pd.DataFrame(rows, columns=["low", "high", "predicted", "observed", "n"])


def reliability_by_corpus(predictions: pd.DataFrame, bins: int = BINS) -> dict[str, pd.DataFrame]:
    """reliability() per corpus of one scorer's predictions (corpus, score, true_label)."""
    return {corpus: reliability(g["score"].to_numpy(), g["true_label"].to_numpy(), bins)
            for corpus, g in predictions.groupby("corpus", sort=True)}


def expected_calibration_error(scores: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """Σ over bins of (share of emails) × |mean predicted − observed rate|."""
    table = reliability(scores, labels, bins)
    return float((table["n"] / table["n"].sum() * (table["predicted"] - table["observed"]).abs()).sum())


def f1_at(scores: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """F1 of the verdicts score > threshold (NaN where the sample holds one class)."""
    value = f1(*confusion(np.asarray(scores) > threshold, labels))
    return float("nan") if value is None else value


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(threshold, F1) maximising F1 on these emails over every distinct cut: midpoints between
    sorted distinct scores, and below all of them; ties go to the threshold nearest the product's
    (0). NaN, NaN where the emails hold one class. Vectorised: one sort and cumulative counts."""
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels) == 1
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if not positives or not negatives:
        return float("nan"), float("nan")
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], labels[order]
    last = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))  # last index of each distinct score
    tp = np.cumsum(hits)[last]
    fp = last + 1 - tp
    values = 2.0 * tp / (2 * tp + fp + (positives - tp))
    below = np.append(ranked[last[1:]], ranked[-1] - 1.0)  # the next distinct score down (or below all)
    thresholds = (ranked[last] + below) / 2
    thresholds[-1] = ranked[-1] - 1.0
    best = values.max()
    ties = thresholds[values == best]
    return float(ties[np.argmin(np.abs(ties - VERDICT_THRESHOLD))]), float(best)


def retuned_f1(scores: np.ndarray, labels: np.ndarray, fraction: float, repeats: int = REPEATS,
               seed: int = 0) -> tuple[float, float, float]:
    """F1 on the rest of the emails after picking the best threshold on a random `fraction` of
    them: (mean, 2.5th, 97.5th percentile) over repeats; NaN where no split has both classes."""
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels)
    n = len(scores)
    k = max(2, int(round(fraction * n)))
    if n - k < 2:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(repeats):
        order = rng.permutation(n)
        tune, rest = order[:k], order[k:]
        threshold, _ = best_threshold(scores[tune], labels[tune])
        if threshold != threshold:  # the tuning emails hold one class: keep the product's threshold
            threshold = VERDICT_THRESHOLD
        values.append(f1_at(scores[rest], labels[rest], threshold))
    values = np.array([v for v in values if v == v])
    if not len(values):
        return float("nan"), float("nan"), float("nan")
    return float(values.mean()), float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def threshold_transfer(predictions: pd.DataFrame, fractions: Sequence[float] = RETUNE_FRACTIONS,
                       repeats: int = REPEATS, seed: int = 0) -> pd.DataFrame:
    """Per corpus of one scorer's predictions (corpus, score, true_label): n, ECE, F1 at 0, the
    oracle threshold and its F1, and F1 after re-tuning on each fraction (mean, low, high)."""
    rows = []
    for corpus, group in predictions.groupby("corpus", sort=True):
        scores, labels = group["score"].to_numpy(), group["true_label"].to_numpy()
        threshold, oracle = best_threshold(scores, labels)
        row = {"corpus": corpus, "n": len(group), "ece": expected_calibration_error(scores, labels),
               "f1_at_0": f1_at(scores, labels, VERDICT_THRESHOLD), "oracle_threshold": threshold,
               "oracle_f1": oracle}
        for fraction in fractions:
            mean, low, high = retuned_f1(scores, labels, fraction, repeats, seed)
            row.update({f"retuned_{fraction:g}": mean, f"retuned_{fraction:g}_low": low,
                        f"retuned_{fraction:g}_high": high})
        rows.append(row)
    return pd.DataFrame(rows)


def calibration_grid(store, scorer_ids: tuple[str, ...]) -> pd.DataFrame:
    """The registry's "calibration" analysis as a sample grid (row: corpus; columns: n, ECE, F1 at 0,
    oracle threshold and F1, F1 re-tuned on 10%, with its 95% range as the interval)."""
    transfer = threshold_transfer(store.scores(scorer_ids[0]))
    rows = []
    for r in transfer.to_dict("records"):
        for column, value, low, high in [("n", r["n"], None, None), ("ECE", r["ece"], None, None),
                                         ("F1 at 0", r["f1_at_0"], None, None),
                                         ("oracle threshold", r["oracle_threshold"], None, None),
                                         ("oracle F1", r["oracle_f1"], None, None),
                                         ("F1 re-tuned on 10%", r["retuned_0.1"], r["retuned_0.1_low"],
                                          r["retuned_0.1_high"])]:
            rows.append({"row": r["corpus"], "column": column, "value": value, "low": low, "high": high})
    return pd.DataFrame(rows, columns=["row", "column", "value", "low", "high"])
