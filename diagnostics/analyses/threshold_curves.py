"""F1 by threshold, per corpus, from one scorer's stored scores: is an out-of-domain drop a shifted
threshold (the corpus' curve peaks away from 0, at an F1 near the in-domain one) or a lost
ranking (the curve stays low at every threshold)? The curve is read off the emails the scorer
was evaluated on; the band is the 95% bootstrap interval of F1 at each threshold."""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.metrics import confusion, f1

POINTS = 41
DRAWS = 400


def f1_by_threshold(store, scorer_ids: tuple[str, ...], points: int = POINTS, draws: int = DRAWS,
                    seed: int = 0) -> pd.DataFrame:
    """Curve rows (series = corpus, x = threshold, y = F1, low, high) over `points` thresholds
    spanning the scorer's scores; corpora with one class (F1 undefined) are left out."""
    scores = store.scores(scorer_ids[0])
    if scores.empty:
        return pd.DataFrame(columns=["series", "x", "y", "low", "high"])
    grid = np.linspace(scores["score"].min() - 1e-6, scores["score"].max(), points)
    rng = np.random.default_rng(seed)
    rows = []
    for corpus, group in scores.groupby("corpus", sort=True):
        values, labels = group["score"].to_numpy(), group["true_label"].to_numpy()
        if labels.min() == labels.max():
            continue
        resamples = rng.integers(0, len(values), size=(draws, len(values)))
        for threshold in grid:
            verdicts = values > threshold
            point = f1(*confusion(verdicts, labels))
            booted = [f1(*confusion(verdicts[i], labels[i])) for i in resamples]
            booted = np.array([b for b in booted if b is not None])
            low, high = (np.quantile(booted, [0.025, 0.975]) if len(booted) else (np.nan, np.nan))
            rows.append({"series": corpus, "x": float(threshold), "y": np.nan if point is None else point,
                         "low": float(low), "high": float(high)})
    return pd.DataFrame(rows, columns=["series", "x", "y", "low", "high"])
