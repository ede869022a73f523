import pandas as pd
import pytest

import numpy as np

from diagnostics.analyses.matrix import bootstrap_f1_interval, generalization_gap, with_f1_intervals


def test_generalization_gap_is_in_minus_out():
    metrics = pd.DataFrame([
        dict(adapter_id="s", model="m", training_set="spec", paradigm="specialist", in_domain=True, f1=0.9),
        dict(adapter_id="s", model="m", training_set="spec", paradigm="specialist", in_domain=False, f1=0.5),
        dict(adapter_id="s", model="m", training_set="spec", paradigm="specialist", in_domain=False, f1=0.7),
        dict(adapter_id="z", model="m", training_set="zero-shot", paradigm="zero-shot", in_domain=False, f1=0.6),
    ])
    gap = generalization_gap(metrics)
    assert len(gap) == 1
    assert gap.iloc[0]["gap"] == pytest.approx(0.3)


def test_bootstrap_interval_of_a_perfect_classifier_is_a_point():
    assert bootstrap_f1_interval(tp=30, fp=0, fn=0, tn=20) == (1.0, 1.0)


def test_bootstrap_interval_matches_resampling_the_emails_themselves():
    # 100 emails: 40 tp, 10 fp, 20 fn, 30 tn (F1 = 80 / 110). Resample the emails directly, the
    # slow way, and compare the percentile interval with the counts-only multinomial shortcut.
    outcomes = np.array([0] * 40 + [1] * 10 + [2] * 20 + [3] * 30)
    rng = np.random.default_rng(1)
    samples = outcomes[rng.integers(0, len(outcomes), size=(20000, len(outcomes)))]
    tp, fp, fn = ((samples == k).sum(1) for k in range(3))
    slow = np.percentile(2 * tp / (2 * tp + fp + fn), [2.5, 97.5])
    low, high = bootstrap_f1_interval(40, 10, 20, 30, draws=20000, seed=2)
    assert low < 80 / 110 < high
    assert abs(low - slow[0]) < 0.015 and abs(high - slow[1]) < 0.015


def test_bootstrap_interval_narrows_with_the_square_root_of_n():
    small = bootstrap_f1_interval(40, 10, 20, 30, draws=20000)
    large = bootstrap_f1_interval(160, 40, 80, 120, draws=20000)
    ratio = (small[1] - small[0]) / (large[1] - large[0])
    assert 1.7 < ratio < 2.3


def test_intervals_are_added_where_f1_is_defined():
    metrics = pd.DataFrame({"tp": [5, 7], "fp": [1, 0], "fn": [2, 3], "tn": [4, 0], "f1": [10 / 13, None]})
    out = with_f1_intervals(metrics)
    assert out.loc[0, "f1_low"] <= 10 / 13 <= out.loc[0, "f1_high"]
    assert pd.isna(out.loc[1, "f1_low"])  # one-class sample: recall only, no F1 interval


def test_seeds_of_one_training_set_get_rows_of_their_own():
    import pandas as pd

    from diagnostics.analyses.matrix import with_seed_labels

    metrics = pd.DataFrame({"model": ["m", "m", "m", "tfidf-lr", "m"],
                            "training_set": ["generalist", "generalist", "specialist-A", "generalist", "zero-shot"],
                            "adapter_id": ["m--g--s13", "m--g--s14", "m--a--s13", "tfidf-lr--generalist--s13",
                                           "zero-shot:m"],
                            "corpus": "A"})
    adapters = pd.DataFrame({"id": ["m--g--s13", "m--g--s14", "m--a--s13"], "seed": [13, 14, 13]})
    labelled = with_seed_labels(metrics, adapters)["training_set"].tolist()
    assert labelled == ["generalist (seed 13)", "generalist (seed 14)", "specialist-A", "generalist", "zero-shot"]
