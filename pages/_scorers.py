"""Scorer pickers: every page lists scorers by id with their one display name (data.scorers), once
each, and keeps the pick in the URL so that the link reopens the same scorers.

The URL holds display names (unique in the store, readable in a presenter's address bar); an id,
a long name, or a training set that names one scorer opens the same scorer.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from data.records import CLASSIFICATION_HEAD
from data.scorers import names_by_id, resolve_all
from pages._safe import md


def choices(scorers: pd.DataFrame, kinds: tuple[str, ...] = ("adapter", "zero-shot")) -> pd.DataFrame:
    """The scorers a picker offers: adapters first, then each model's zero-shot base (then references)."""
    order = {kind: i for i, kind in enumerate(kinds)}
    offered = scorers[scorers["kind"].isin(kinds)]
    return offered.assign(_order=offered["kind"].map(order)).sort_values(["_order", "name"], kind="stable")


def pick_scorers(label: str, scorers: pd.DataFrame, key: str, param: str, default: list[str] | None = None,
                 kinds: tuple[str, ...] = ("adapter", "zero-shot"), container=st, long_names: bool = False,
                 **kwargs) -> list[str]:
    """A multiselect of scorer ids shown by name (long_names: always with the model, for pages that
    compare models); ?param=… preselects (default: `default` ids)."""
    offered = choices(scorers, kinds)
    names = dict(zip(offered["id"], offered["long_name"])) if long_names else names_by_id(offered)
    wanted = [i for i in resolve_all(offered, st.query_params.get_all(param)) if i in names]
    picked = container.multiselect(label, list(names), default=wanted or [i for i in (default or []) if i in names],
                                   format_func=names.get, key=key, **kwargs)
    st.query_params[param] = [names[i] for i in picked]
    return picked


def pick_scorer(label: str, scorers: pd.DataFrame, key: str, param: str, default: str | None = None,
                kinds: tuple[str, ...] = ("adapter", "zero-shot"), container=st, write_url: bool = True,
                **kwargs) -> str | None:
    """A selectbox of scorer ids shown by name; ?param=… preselects (default: `default`, else the first)."""
    offered = choices(scorers, kinds)
    names = names_by_id(offered)
    ids = list(names)
    if not ids:
        return None
    wanted = resolve_all(offered, st.query_params.get_all(param)) if param else []
    start = wanted[0] if wanted else default if default in names else ids[0]
    picked = container.selectbox(label, ids, index=ids.index(start), format_func=names.get, key=key, **kwargs)
    if param and write_url:
        st.query_params[param] = names[picked]
    return picked


def record(scorers: pd.DataFrame, scorer_id: str) -> dict:
    """One scorer's catalogue row as a dict."""
    return scorers.set_index("id").loc[scorer_id].to_dict() | {"id": scorer_id}


def show_readout_note(scorer: dict, container=st) -> None:
    """Say how a scorer trained elsewhere is read, where it is not PhishLens' own label-word reading."""
    if scorer.get("readout") == CLASSIFICATION_HEAD:
        container.caption(f"{md(scorer['name'])} is an imported sequence-classification adapter: its score is its "
                          "classification head's logit difference (phishing/spam − legitimate) at the last token. "
                          "Where a view reads the unembedding (logit lens, direct logit attribution), it reads the "
                          "head's difference direction instead.")
