"""F1 by threshold, a diagnostic of a new kind (curve): each point is the F1 of the stored scores
cut at that threshold, recomputed here with scikit-learn; the band holds it; Overview draws it."""

import json

import numpy as np
from sklearn.metrics import f1_score

from data.store import Store
from diagnostics.analyses.threshold_curves import f1_by_threshold
from diagnostics.contracts.registry import KINDS, diagnostic


def test_points_are_f1_at_each_threshold_and_the_band_holds_them(evaluated_settings):
    with Store.open(evaluated_settings.store_path, read_only=True) as store:
        scorer = store.adapters()["id"].iloc[-1]
        scores = store.scores(scorer)
        curves = diagnostic("f1-by-threshold").run_analysis(store, (scorer,))
    assert "curve" in KINDS and diagnostic("f1-by-threshold").kind == "curve"
    two_class = {c for c, g in scores.groupby("corpus") if g["true_label"].nunique() == 2}
    assert set(curves["series"]) == two_class and len(curves) == 41 * len(two_class)
    for row in curves.sample(20, random_state=0).itertuples():
        mine = scores[scores["corpus"] == row.series]
        expected = f1_score(mine["true_label"], mine["score"] > row.x, zero_division=0)
        assert abs(row.y - expected) < 1e-12
        assert row.low - 1e-9 <= row.y <= row.high + 1e-9 or np.isnan(row.low)
    with Store.open(evaluated_settings.store_path, read_only=True) as store:
        assert f1_by_threshold(store, ("no-such-scorer",)).empty


def test_overview_draws_it_by_its_kind(monkeypatch, evaluated_settings):
    from tests.conftest import open_app_page

    at = open_app_page(monkeypatch, evaluated_settings, "pages/overview.py")
    assert not at.exception, at.exception
    assert "F1 by threshold" in [s.value for s in at.subheader]
    titles = [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in at.get("plotly_chart")]
    assert "F1 by threshold" in titles
