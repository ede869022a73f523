"""The F1 matrix's derived views, in pandas only (pages import this; it must stay light)."""

from __future__ import annotations

import pandas as pd

GAP_COLUMNS = ["adapter_id", "model", "training_set", "in_domain_f1", "out_of_domain_f1", "gap"]


def generalization_gap(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean in-domain F1 minus mean out-of-domain F1 per adapter (cells with an F1 only)."""
    scored = metrics.dropna(subset=["f1"])
    scored = scored[scored["paradigm"] != "zero-shot"]
    if scored.empty:
        return pd.DataFrame(columns=GAP_COLUMNS)
    grouped = scored.groupby(["adapter_id", "model", "training_set", "in_domain"])["f1"].mean().unstack("in_domain")
    grouped = grouped.rename(columns={True: "in_domain_f1", False: "out_of_domain_f1"}).reset_index()
    for column in ("in_domain_f1", "out_of_domain_f1"):
        if column not in grouped:
            grouped[column] = float("nan")
    grouped["gap"] = grouped["in_domain_f1"] - grouped["out_of_domain_f1"]
    return grouped[GAP_COLUMNS]
