"""Is a difference between two scorers real? Paired comparisons on the same emails.

Two scorers evaluated on the same test emails are compared on those emails, not as two
independent samples: resampling the emails (with replacement) moves both F1s together, so
the interval on their difference is much narrower than the two separate intervals suggest.
McNemar's exact test asks whether one scorer gets right the emails the other gets wrong more
often than chance. Both are needed for a claim: the findings only state a difference when
the interval excludes 0 and p < alpha, and say "no detectable difference at n = …" otherwise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from data import metrics
from data.records import PairedComparison


def f1_score_of(labels: np.ndarray, verdicts: np.ndarray) -> float:
    """F1 of the positive class as data.metrics (and so the store's METRICS_SQL) defines it: NaN
    unless both classes occur among the labels; 0 when nothing is predicted positive."""
    value = metrics.f1(*metrics.confusion(verdicts, labels))
    return float("nan") if value is None else value


def paired_f1_difference(labels, a, b, draws: int = 4000, level: float = 0.95,
                         seed: int = 0) -> tuple[float, float, float]:
    """F1(a) - F1(b) on the same emails and its percentile paired-bootstrap interval.

    Resampling n emails with replacement only changes how many fall into each of the 8 cells
    (label × a's verdict × b's verdict), so each draw is one multinomial draw over the cells.
    A draw with one class only (F1 undefined) is dropped."""
    labels, a, b = (np.asarray(x, bool) for x in (labels, a, b))
    n = len(labels)
    cell = labels.astype(int) * 4 + a.astype(int) * 2 + b.astype(int)
    counts = np.random.default_rng(seed).multinomial(n, np.bincount(cell, minlength=8) / n, size=draws)
    y, va, vb = (np.array([(c >> shift) & 1 for c in range(8)], bool) for shift in (2, 1, 0))

    def f1(verdict):
        tp = counts[:, y & verdict].sum(1)
        wrong = counts[:, ~y & verdict].sum(1) + counts[:, y & ~verdict].sum(1)
        return np.divide(2 * tp, 2 * tp + wrong, out=np.zeros(draws), where=2 * tp + wrong > 0)

    defined = (counts[:, y].sum(1) > 0) & (counts[:, ~y].sum(1) > 0)
    deltas = (f1(va) - f1(vb))[defined]
    delta = f1_score_of(labels, a) - f1_score_of(labels, b)
    if not len(deltas) or np.isnan(delta):
        return delta, float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(deltas, [tail, 100 - tail])
    return float(delta), float(low), float(high)


def mcnemar_exact(labels, a, b) -> tuple[int, int, float]:
    """(emails only a got right, emails only b got right, two-sided exact McNemar p)."""
    labels, a, b = (np.asarray(x, bool) for x in (labels, a, b))
    a_right, b_right = a == labels, b == labels
    only_a, only_b = int((a_right & ~b_right).sum()), int((b_right & ~a_right).sum())
    if only_a + only_b == 0:
        return only_a, only_b, 1.0
    return only_a, only_b, float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def compare_scorers(labels, a, b, draws: int = 4000, level: float = 0.95, seed: int = 0) -> PairedComparison:
    """Scorer a against scorer b on the same emails (verdicts as 0/1 or booleans)."""
    delta, low, high = paired_f1_difference(labels, a, b, draws, level, seed)
    only_a, only_b, p = mcnemar_exact(labels, a, b)
    return PairedComparison(n=len(np.asarray(labels)), f1_a=f1_score_of(labels, a), f1_b=f1_score_of(labels, b),
                            delta_f1=delta, delta_low=low, delta_high=high, only_a_right=only_a,
                            only_b_right=only_b, mcnemar_p=p, level=level)


def difference_sentence(name_a: str, name_b: str, corpus: str, result: PairedComparison, alpha: float = 0.05) -> str:
    """The finding in plain words, claiming a difference only where the data supports one."""
    if np.isnan(result.delta_f1):
        return f"{corpus}: F1 is undefined (one class only), so {name_a} and {name_b} are not compared on it."
    interval = f"ΔF1 {result.delta_f1:+.3f}, {result.level:.0%} CI [{result.delta_low:+.3f}, {result.delta_high:+.3f}]"
    evidence = f"McNemar p = {result.mcnemar_p:.3g}, n = {result.n}"
    if result.significant(alpha):
        better, worse = (name_a, name_b) if result.delta_f1 > 0 else (name_b, name_a)
        return f"{corpus}: {better} beats {worse} ({interval}; {evidence})."
    return f"{corpus}: no detectable difference between {name_a} and {name_b} at n = {result.n} ({interval}; {evidence})."


def compare_on_corpora(verdicts, draws: int = 4000, level: float = 0.95, seed: int = 0):
    """Per corpus of a paired_verdicts frame (corpus, true_label, verdict_a, verdict_b): the
    PairedComparison of scorer a against scorer b on the emails both scored."""
    return {corpus: compare_scorers(rows["true_label"].to_numpy(), rows["verdict_a"].to_numpy(),
                                    rows["verdict_b"].to_numpy(), draws, level, seed)
            for corpus, rows in verdicts.groupby("corpus", sort=True)}


def f1_half_width(n: int, f1: float = 0.85, prevalence: float = 0.5, draws: int = 4000, level: float = 0.95,
                  seed: int = 0) -> float:
    """Expected half-width of the bootstrap F1 interval on n test emails, for a scorer whose
    precision and recall both equal `f1`, on a corpus with this share of positives."""
    positives = max(1, round(n * prevalence))
    tp = round(positives * f1)
    fn = positives - tp
    fp = min(n - positives, round(tp * (1 - f1) / f1)) if f1 > 0 else 0
    tn = n - positives - fp
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.array([tp, fp, fn, tn], float) / n, size=draws)
    denominator = 2 * counts[:, 0] + counts[:, 1] + counts[:, 2]
    values = np.divide(2 * counts[:, 0], denominator, out=np.zeros(draws), where=denominator > 0)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float((high - low) / 2)


def power_note(eval_size: int | None, target_half_width: float = 0.04, f1: float = 0.85) -> str:
    """What a spec's test size buys: the expected 95% half-width of each cell's F1, and the test
    size that a target half-width needs (for a scorer near `f1`, half the emails positive)."""
    needed = eval_size_for(target_half_width, f1)
    if eval_size is None:
        return (f"eval_size = all: each cell's F1 is as sure as its corpus' test split allows; ±{target_half_width:.2f} "
                f"(95%) needs about {needed} test emails per corpus at F1 ≈ {f1:.2f}")
    width = f1_half_width(eval_size, f1)
    verdict = "enough" if width <= target_half_width else f"about {needed} are needed for ±{target_half_width:.2f}"
    return (f"eval_size = {eval_size} test emails per corpus: each cell's 95% interval on F1 is about ±{width:.2f} "
            f"at F1 ≈ {f1:.2f}; {verdict}")


def eval_size_for(half_width: float, f1: float = 0.85, prevalence: float = 0.5, largest: int = 100_000) -> int:
    """The smallest test size whose expected F1 half-width is at most `half_width` (bisection;
    the half-width falls as 1/sqrt(n))."""
    low, high = 10, largest
    if f1_half_width(high, f1, prevalence) > half_width:
        return largest
    while high - low > max(1, low // 50):
        middle = (low + high) // 2
        low, high = (middle, high) if f1_half_width(middle, f1, prevalence) > half_width else (low, middle)
    return high


def paired_grid(store, scorer_ids: tuple[str, ...]) -> pd.DataFrame:
    """The registry's "paired-comparison" analysis as a sample grid (row: corpus; columns: n, F1 of
    each, ΔF1 with its paired-bootstrap 95% interval, McNemar's p)."""
    first, second = scorer_ids
    rows = []
    for corpus, c in compare_on_corpora(store.paired_verdicts(first, second)).items():
        for column, value, low, high in [("n", c.n, None, None), ("F1 A", c.f1_a, None, None),
                                         ("F1 B", c.f1_b, None, None),
                                         ("ΔF1 (A − B)", c.delta_f1, c.delta_low, c.delta_high),
                                         ("McNemar p", c.mcnemar_p, None, None)]:
            rows.append({"row": corpus, "column": column, "value": value, "low": low, "high": high})
    return pd.DataFrame(rows, columns=["row", "column", "value", "low", "high"])
