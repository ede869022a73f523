"""Paired comparisons checked against independent computations: scipy's own paired bootstrap,
resampling the emails directly, and McNemar's exact p summed from binomial coefficients."""

import math

import numpy as np
import pytest
from scipy.stats import bootstrap

from diagnostics.analyses.paired import (compare_scorers, difference_sentence, eval_size_for, f1_half_width, f1_score_of,
                                mcnemar_exact, paired_f1_difference)


def _known_case(n=300, accuracy_a=0.9, accuracy_b=0.8, seed=1):
    """Labels, and verdicts of two scorers that are right on a given share of the same emails."""
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.5
    a = np.where(rng.random(n) < accuracy_a, labels, ~labels)
    b = np.where(rng.random(n) < accuracy_b, labels, ~labels)
    return labels, a, b


def test_paired_interval_matches_scipy_and_direct_resampling():
    labels, a, b = _known_case()
    delta, low, high = paired_f1_difference(labels, a, b, draws=8000, seed=3)
    assert delta == pytest.approx(f1_score_of(labels, a) - f1_score_of(labels, b))
    ours = (low, high)

    def statistic(y, va, vb, axis=-1):
        y, va, vb = (np.atleast_2d(x) for x in (y, va, vb))
        tp_a, tp_b = (y & va).sum(axis), (y & vb).sum(axis)
        f1_a = 2 * tp_a / (2 * tp_a + (~y & va).sum(axis) + (y & ~va).sum(axis))
        f1_b = 2 * tp_b / (2 * tp_b + (~y & vb).sum(axis) + (y & ~vb).sum(axis))
        return f1_a - f1_b

    scipy_ci = bootstrap((labels, a, b), statistic, paired=True, vectorized=True, n_resamples=8000,
                         method="percentile", random_state=5).confidence_interval
    assert ours == pytest.approx((scipy_ci.low, scipy_ci.high), abs=0.012)

    rng = np.random.default_rng(7)  # the emails themselves resampled, one draw at a time
    direct = []
    for _ in range(3000):
        pick = rng.integers(0, len(labels), len(labels))
        direct.append(f1_score_of(labels[pick], a[pick]) - f1_score_of(labels[pick], b[pick]))
    assert ours == pytest.approx(tuple(np.percentile(direct, [2.5, 97.5])), abs=0.012)
    # Paired is narrower than the two F1 intervals taken as independent: the point of pairing.
    assert high - low < 0.25


def test_mcnemar_matches_the_exact_binomial_sum():
    labels, a, b = _known_case(n=120)
    only_a, only_b, p = mcnemar_exact(labels, a, b)
    assert only_a == int(((a == labels) & (b != labels)).sum()) and only_b == int(((b == labels) & (a != labels)).sum())
    m, k = only_a + only_b, min(only_a, only_b)
    expected = min(1.0, 2 * sum(math.comb(m, i) for i in range(k + 1)) / 2**m)
    assert p == pytest.approx(expected, rel=1e-9)
    assert mcnemar_exact(labels, a, a) == (0, 0, 1.0)


def test_findings_claim_a_difference_only_while_it_is_significant():
    labels, a, b = _known_case(n=400, accuracy_a=0.92, accuracy_b=0.78)
    clear = compare_scorers(labels, a, b)
    assert clear.significant() and "beats" in difference_sentence("A", "B", "EnronSpam", clear)
    small = compare_scorers(labels[:40], a[:40], np.where(np.arange(40) == 0, ~a[:40], a[:40]))
    sentence = difference_sentence("A", "B", "EnronSpam", small)
    assert not small.significant() and "no detectable difference between A and B at n = 40" in sentence
    one_class = compare_scorers(np.ones(20, bool), a[:20], b[:20])
    assert "undefined" in difference_sentence("A", "B", "Nazario", one_class)


def test_power_figures_follow_the_bootstrap():
    from diagnostics.analyses.matrix import bootstrap_f1_interval

    low, high = bootstrap_f1_interval(85, 15, 15, 85, draws=4000)  # n = 200, F1 = 0.85, half positives
    assert f1_half_width(200, 0.85, 0.5) == pytest.approx((high - low) / 2, abs=0.01)
    assert f1_half_width(40) > 0.1 > f1_half_width(600)
    needed = eval_size_for(0.04)
    assert f1_half_width(needed) <= 0.04 < f1_half_width(int(needed * 0.8))


def test_a_one_class_sample_is_never_called_a_significant_f1_difference():
    import numpy as np

    from diagnostics.analyses.paired import compare_scorers

    labels = np.ones(60, dtype=int)  # all phishing (Nazario): F1's interval is undefined
    a, b = np.zeros(60, dtype=int), np.r_[np.ones(12, dtype=int), np.zeros(48, dtype=int)]
    result = compare_scorers(labels, a, b)
    assert result.mcnemar_p < 0.05 and np.isnan(result.delta_low)
    assert not result.significant()
