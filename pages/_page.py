"""What every page starts with: its settings, title and caption, and its frames from the store."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from data.metrics import collapse_sentence
from data.schema import LABEL_VIEW_TITLES
from pages._cache import results_or_stop
from pages._safe import md


def open_page(title: str, caption: str, reads: str | None = "scorers") -> tuple[object, dict[str, pd.DataFrame]]:
    """(settings, frames): the frames of pages._cache.results_or_stop(reads) ({} when reads is None);
    the page stops with the reason when the store cannot be read. Collapsed adapters are named
    at the top of the page, whatever it shows."""
    settings = st.session_state["settings"]
    st.title(title)
    st.caption(caption)
    frames = results_or_stop(settings.store_path, reads, settings.model) if reads else {}
    warn_of_collapsed(frames.get("collapsed"))
    return settings, frames


def warn_of_collapsed(collapsed: pd.DataFrame | None) -> None:
    """One warning naming every collapsed adapter (one verdict for nearly every email) and what to change."""
    if collapsed is None or collapsed.empty:
        return
    st.warning("**Collapsed adapters** — their F1 measures the label mix, not the detector:\n\n" + "\n\n".join(
        md(collapse_sentence(r.training_set, r.adapter_id, int(r.n), r.positive_share, r.label_share), 600)
        for r in collapsed.itertuples()))


def pick_label_view(key: str) -> str:
    """The Labels switch of a matrix (data.schema.LABEL_VIEWS), kept in the URL (?labels=…)."""
    views = list(LABEL_VIEW_TITLES)
    wanted = st.query_params.get("labels")
    view = st.radio("Labels", views, format_func=LABEL_VIEW_TITLES.get, horizontal=True, key=key,
                    index=views.index(wanted) if wanted in views else 0,
                    help="The label audit and the near-duplicate audit run on the Corpora page; corrections are "
                         "recorded in the Inbox.")
    st.query_params["labels"] = view
    return view
