"""Architectures side by side: each base model's F1 per paradigm (specialist, generalist, FTICL) in
domain, out of domain and on held-out corpora, with the spread over its adapters (seeds, and the
specialists of a paradigm); and two architectures' adapters of one training set compared on the
same test emails, seed with seed (diagnostics.analyses.paired).
"""

from __future__ import annotations

import pandas as pd

from data.records import PairedComparison
from data.scorers import REFERENCE_MODEL
from diagnostics.analyses.matrix import SCOPE_COLUMNS, cell_scope

SUMMARY_COLUMNS = ["model", "paradigm", "scope", "mean_f1", "sd_f1", "adapters", "seeds"]


def architecture_summary(metrics: pd.DataFrame, scorers: pd.DataFrame) -> pd.DataFrame:
    """Per (model, paradigm, scope): the mean F1 over that model's adapters (each adapter's mean over
    its cells of the scope), the standard deviation across adapters, and how many adapters and seeds.
    The bag of words is its own "model" row; zero-shot is the paradigm of the base models."""
    scored = metrics.dropna(subset=["f1"])
    if scored.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    seeds = scorers.set_index("id")["seed"]
    scored = scored.assign(scope=cell_scope(scored), seed=scored["adapter_id"].map(seeds))
    per_adapter = scored.groupby(["model", "paradigm", "scope", "adapter_id"], dropna=False).agg(
        f1=("f1", "mean"), seed=("seed", "first")).reset_index()
    summary = per_adapter.groupby(["model", "paradigm", "scope"]).agg(
        mean_f1=("f1", "mean"), sd_f1=("f1", "std"), adapters=("adapter_id", "nunique"),
        seeds=("seed", "nunique")).reset_index()
    order = {scope: i for i, scope in enumerate(SCOPE_COLUMNS)}
    return summary.assign(_o=summary["scope"].map(order)).sort_values(["model", "paradigm", "_o"]) \
        .drop(columns="_o")[SUMMARY_COLUMNS].reset_index(drop=True)


def architectures(scorers: pd.DataFrame) -> list[str]:
    """The base models of the store's adapters and zero-shot scorers (the bag of words is not one)."""
    return sorted(set(scorers.loc[scorers["kind"].isin(["adapter", "zero-shot"]), "model"]) - {REFERENCE_MODEL})


def shared_training_sets(scorers: pd.DataFrame, model_a: str, model_b: str) -> list[str]:
    """The training sets both models have an adapter of (generalist first)."""
    adapters = scorers[scorers["kind"] == "adapter"]
    both = set(adapters.loc[adapters["model"] == model_a, "training_set"]) & \
        set(adapters.loc[adapters["model"] == model_b, "training_set"])
    return sorted(both, key=lambda t: (t != "generalist", t))


def seed_pairs(scorers: pd.DataFrame, model_a: str, model_b: str, training_set: str) -> list[tuple[str, str]]:
    """(adapter of A, adapter of B) on one training set, paired by seed where both have it, then the
    rest in seed order: each pair is compared on the emails both scored."""
    adapters = scorers[(scorers["kind"] == "adapter") & (scorers["training_set"] == training_set)]
    a = adapters[adapters["model"] == model_a].sort_values(["seed", "id"])
    b = adapters[adapters["model"] == model_b].sort_values(["seed", "id"])
    common = [s for s in a["seed"] if s in set(b["seed"])]
    pairs = [(a.loc[a["seed"] == s, "id"].iloc[0], b.loc[b["seed"] == s, "id"].iloc[0]) for s in dict.fromkeys(common)]
    rest_a = [i for i in a["id"] if i not in {p[0] for p in pairs}]
    rest_b = [i for i in b["id"] if i not in {p[1] for p in pairs}]
    return pairs + list(zip(rest_a, rest_b))


def comparison_rows(name_a: str, name_b: str, compared: dict[str, PairedComparison]) -> list[dict]:
    """One table row per corpus of a paired comparison (diagnostics.analyses.paired.compare_on_corpora)."""
    return [{"A": name_a, "B": name_b, "corpus": corpus, "n": c.n, "F1 A": c.f1_a, "F1 B": c.f1_b,
             "ΔF1 (A − B)": c.delta_f1, "95% CI low": c.delta_low, "95% CI high": c.delta_high,
             "only A right": c.only_a_right, "only B right": c.only_b_right, "McNemar p": c.mcnemar_p,
             "significant": c.significant()} for corpus, c in compared.items()]
