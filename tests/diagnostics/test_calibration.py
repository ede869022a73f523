"""Calibration and threshold transfer on cases with known answers: reliability matches
scikit-learn's calibration_curve, a calibrated scorer has a small ECE and a shifted one a large
one, the best threshold is the brute-force best, and a corpus whose scores are only shifted
recovers its F1 by re-tuning; the Overview draws it from a real store."""

import json

import numpy as np
import pytest

from diagnostics.analyses.calibration import (best_threshold, expected_calibration_error, f1_at, probability, reliability,
                                     retuned_f1, threshold_transfer)


def test_reliability_matches_scikit_learns_calibration_curve():
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(0)
    scores = rng.normal(0, 2, 3000)
    labels = (rng.random(3000) < probability(scores * 0.6)).astype(int)  # over-confident scorer
    table = reliability(scores, labels, bins=10)
    observed, predicted = calibration_curve(labels, probability(scores), n_bins=10, strategy="uniform")
    assert np.allclose(table["observed"], observed) and np.allclose(table["predicted"], predicted)
    ece = expected_calibration_error(scores, labels)
    by_hand = sum(n / 3000 * abs(p - o) for n, p, o in zip(table["n"], table["predicted"], table["observed"]))
    assert ece == pytest.approx(by_hand) and ece > 0.05


def test_a_calibrated_scorer_has_a_small_ece_and_a_shifted_one_a_large_one():
    rng = np.random.default_rng(1)
    scores = rng.normal(0, 2, 20000)
    labels = (rng.random(20000) < probability(scores)).astype(int)
    assert expected_calibration_error(scores, labels) < 0.02
    assert expected_calibration_error(scores - 3, labels) > 0.2


def test_the_best_threshold_is_the_brute_force_best():
    rng = np.random.default_rng(2)
    for _ in range(200):
        n = int(rng.integers(2, 40))
        scores, labels = np.round(rng.normal(size=n), 1), rng.integers(0, 2, n)
        threshold, best = best_threshold(scores, labels)
        if labels.min() == labels.max():
            assert np.isnan(threshold) and np.isnan(best)
            continue
        distinct = np.unique(scores)
        candidates = np.concatenate([[distinct[0] - 1], (distinct[:-1] + distinct[1:]) / 2])
        assert best == pytest.approx(max(f1_at(scores, labels, c) for c in candidates))
        assert f1_at(scores, labels, threshold) == pytest.approx(best)


def test_a_shifted_corpus_is_a_threshold_problem_and_re_tuning_recovers_it():
    """Separable scores pushed below 0: F1 at 0 collapses, the oracle is 1, and re-tuning on 10 %
    of the labelled emails gets most of the way back; an unshifted corpus gains nothing."""
    import pandas as pd

    rng = np.random.default_rng(3)
    labels = np.repeat([0, 1], 100)
    separable = np.where(labels == 1, rng.uniform(1, 3, 200), rng.uniform(-3, -1, 200))
    frame = pd.concat([pd.DataFrame({"corpus": "home", "score": separable, "true_label": labels}),
                       pd.DataFrame({"corpus": "away", "score": separable - 4, "true_label": labels})])
    table = threshold_transfer(frame, repeats=50).set_index("corpus")
    assert table.loc["home", "f1_at_0"] == 1.0 and table.loc["home", "oracle_f1"] == 1.0
    assert table.loc["away", "f1_at_0"] == 0.0 and table.loc["away", "oracle_f1"] == 1.0
    assert -5 < table.loc["away", "oracle_threshold"] < -3  # the gap between the classes, shifted by 4
    assert table.loc["away", "retuned_0.1"] > 0.9 and table.loc["away", "retuned_0.1_low"] > 0.6
    mean, low, high = retuned_f1(separable - 4, labels, 0.5, repeats=20)
    assert low <= mean <= high


def test_overview_draws_calibration_and_threshold_transfer(monkeypatch, evaluated_settings):
    from data.store import Store
    from tests.conftest import open_app_page

    at = open_app_page(monkeypatch, evaluated_settings, "pages/overview.py")
    assert not at.exception, at.exception
    titles = [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in at.get("plotly_chart")]
    assert any(t.startswith("Reliability") for t in titles) and any(t.startswith("F1 after re-tuning") for t in titles)
    table = next(d.value for d in at.dataframe if "oracle_f1" in d.value.columns)
    with Store.open(evaluated_settings.store_path, read_only=True) as store:
        scorer = store.metrics().drop_duplicates("adapter_id").iloc[0]["adapter_id"]
        scores = store.scores(scorer)
    assert list(table["corpus"]) == sorted(scores["corpus"].unique())
    assert (table["oracle_f1"].dropna() >= table["f1_at_0"].dropna() - 1e-12).all()  # the oracle is an upper bound
