"""What every page starts with: its settings, title and caption, and its frames from the store."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages._cache import results_or_stop


def open_page(title: str, caption: str, reads: str | None = "scorers") -> tuple[object, dict[str, pd.DataFrame]]:
    """(settings, frames): the frames of pages._cache.results_or_stop(reads) ({} when reads is None);
    the page stops with the reason when the store cannot be read."""
    settings = st.session_state["settings"]
    st.title(title)
    st.caption(caption)
    return settings, results_or_stop(settings.store_path, reads) if reads else {}
