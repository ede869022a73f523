"""The F1 matrix's derived views, in pandas only (pages import this; it must stay light)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.records import ZERO_SHOT

GAP_COLUMNS = ["adapter_id", "model", "training_set", "in_domain_f1", "out_of_domain_f1", "held_out_f1", "gap",
               "held_out_gap"]
# A cell is in domain, out of domain (a corpus other adapters train on) or held out (none does).
SCOPE_COLUMNS = ("in_domain_f1", "out_of_domain_f1", "held_out_f1")


def cell_scope(metrics: pd.DataFrame) -> pd.Series:
    """Per matrix cell: in_domain_f1, out_of_domain_f1 or held_out_f1 (a held-out corpus is never in domain)."""
    held_out = metrics["held_out"].astype(bool) if "held_out" in metrics else pd.Series(False, index=metrics.index)
    return pd.Series(np.where(metrics["in_domain"], "in_domain_f1",
                              np.where(held_out, "held_out_f1", "out_of_domain_f1")), index=metrics.index)


def with_seed_labels(metrics: pd.DataFrame, adapters: pd.DataFrame) -> pd.DataFrame:
    """Where one model has several adapters on a training set (LoRA seeds), each keeps a row of its
    own, "<training set> (seed N)", instead of sharing one cell that only the last would fill; a
    training set with one adapter keeps its name."""
    if metrics.empty:
        return metrics
    seeds = adapters.set_index("id")["seed"]
    count = metrics.groupby(["model", "training_set"])["adapter_id"].transform("nunique")
    seed = metrics["adapter_id"].map(seeds)
    several = (count > 1) & seed.notna()
    named = metrics["training_set"] + " (seed " + seed.fillna(-1).astype(int).astype(str) + ")"
    return metrics.assign(training_set=metrics["training_set"].where(~several, named))


def generalization_gap(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per adapter: mean F1 in domain, out of domain and on held-out corpora (cells with an F1
    only), and in-domain minus each of the other two."""
    scored = metrics.dropna(subset=["f1"])
    scored = scored[scored["paradigm"] != ZERO_SHOT]
    if scored.empty:
        return pd.DataFrame(columns=GAP_COLUMNS)
    scored = scored.assign(scope=cell_scope(scored))
    grouped = scored.groupby(["adapter_id", "model", "training_set", "scope"])["f1"].mean().unstack("scope")
    grouped = grouped.reset_index()
    for column in SCOPE_COLUMNS:
        if column not in grouped:
            grouped[column] = float("nan")
    grouped["gap"] = grouped["in_domain_f1"] - grouped["out_of_domain_f1"]
    grouped["held_out_gap"] = grouped["in_domain_f1"] - grouped["held_out_f1"]
    return grouped[GAP_COLUMNS]


def bootstrap_f1_interval(tp: int, fp: int, fn: int, tn: int, draws: int = 2000, level: float = 0.95,
                          seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of F1 over the evaluated emails.

    Resampling n emails with replacement only changes the confusion counts, so each draw is
    one multinomial draw of (tp, fp, fn, tn): no per-email data needed. A draw with no
    positive prediction or label (F1 undefined) counts as 0.
    """
    n = tp + fp + fn + tn
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.array([tp, fp, fn, tn], dtype=float) / n, size=draws)
    denominator = 2 * counts[:, 0] + counts[:, 1] + counts[:, 2]
    f1 = np.divide(2 * counts[:, 0], denominator, out=np.zeros(draws), where=denominator > 0)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(f1, [tail, 100 - tail])
    return float(low), float(high)


def with_f1_intervals(metrics: pd.DataFrame, draws: int = 2000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """The metrics frame plus f1_low / f1_high (bootstrap, see bootstrap_f1_interval) where F1 is defined."""
    bounds = [bootstrap_f1_interval(int(r.tp), int(r.fp), int(r.fn), int(r.tn), draws, level, seed)
              if not pd.isna(r.f1) else (float("nan"), float("nan")) for r in metrics.itertuples()]
    return metrics.assign(f1_low=[b[0] for b in bounds], f1_high=[b[1] for b in bounds])


def matrix_in_view(store, view: str) -> pd.DataFrame:
    """The matrix's metrics (with F1 intervals and seed labels) over one of data.schema.LABEL_VIEWS."""
    return with_seed_labels(with_f1_intervals(store.metrics(view)), store.adapters())


def cell_moves(original: pd.DataFrame, viewed: pd.DataFrame) -> pd.DataFrame:
    """Per cell: F1 as the corpora label it beside F1 in another label view, the difference, and how
    many test emails the view left out or relabelled."""
    keys = ["adapter_id", "corpus"]
    both = original[keys + ["training_set", "n", "f1", "tp", "fn"]].merge(
        viewed[keys + ["n", "f1", "tp", "fn"]], on=keys, how="left", suffixes=("", "_view"))
    left_out = both["n"] - both["n_view"].fillna(0)
    return both.assign(emails_left_out=left_out, share_left_out=left_out / both["n"],
                       positives_moved=(both["tp"] + both["fn"]) - (both["tp_view"] + both["fn_view"]).fillna(0),
                       delta_f1=both["f1_view"] - both["f1"])[
        keys + ["training_set", "n", "emails_left_out", "share_left_out", "positives_moved", "f1", "f1_view",
                "delta_f1"]]
