"""All Streamlit caching. Results are keyed by the store file's path and modification
time, so a page shows new results as soon as a job has written them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from data.store import Store, StoreError
from diagnostics.matrix import generalization_gap


def _stamp(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


@st.cache_data(show_spinner=False)
def _read(path: str, stamp: float, what: str) -> dict[str, pd.DataFrame]:
    store = Store.open(Path(path), read_only=True, busy_timeout=15)
    with store.connection():  # one connection for all of the page's reads
        if what == "overview":
            metrics = store.metrics()
            return {
                "metrics": metrics,
                "gap": generalization_gap(metrics),
                "corpora": store.query("SELECT name, label_meaning, synthetic FROM corpora ORDER BY name"),
                "runs": store.query(
                    "SELECT id, kind, status, started_at, finished_at, "
                    "date_diff('second', started_at, finished_at) AS seconds, error "
                    "FROM runs ORDER BY started_at DESC"),
                "adapters": store.query("SELECT id, training_set, n_train, seconds, train_loss FROM adapters ORDER BY id"),
            }
        if what == "corpora":
            return {
                "corpora": store.query("SELECT * FROM corpora ORDER BY name"),
                "splits": store.query(
                    "SELECT s.corpus, s.split, e.label, count(*) AS n FROM splits s JOIN emails e ON e.id = s.email_id "
                    "GROUP BY ALL ORDER BY ALL"),
                "training_sets": store.query(
                    "SELECT t.name, t.kind, t.size, t.seed, e.corpus, e.label, count(*) AS n "
                    "FROM training_sets t JOIN training_set_emails m ON m.training_set = t.name "
                    "JOIN emails e ON e.id = m.email_id GROUP BY ALL ORDER BY ALL"),
                "errors": store.query("SELECT corpus, count(*) AS n, any_value(error) AS example FROM ingest_errors GROUP BY corpus"),
            }
    raise ValueError(what)


def read_results(path: Path, what: str) -> dict[str, pd.DataFrame]:
    """Frames for one page from the store (raises data.store.StoreError for a missing or busy store)."""
    return _read(str(path), _stamp(path), what)


def results_or_stop(path: Path, what: str) -> dict[str, pd.DataFrame]:
    """The page's frames, or a warning saying why the store cannot be read (and stop the page)."""
    try:
        return read_results(path, what)
    except StoreError as exc:
        st.warning(str(exc))
        st.stop()
