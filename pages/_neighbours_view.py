"""Nearest training emails of one email for one adapter (diagnostics.analyses.neighbours), with a link to
explain each; offers to build the adapter's index as a job when there is none."""

from __future__ import annotations

import streamlit as st

from data.records import JobRequest, label_name
from diagnostics.runners.background import start_job
from data.store import Store
from pages._cache import neighbour_query, stored
from pages._safe import md, started_message


def show_nearest_training_emails(settings, record: dict | None, mail, key: str, k: int = 5) -> None:
    """`record`: the adapter's catalogue row (data.scorers), None for a zero-shot base."""
    if record is None:
        st.caption("The zero-shot base model was not trained on anything: no nearest training emails.")
        return
    indexes = stored(settings.store_path, Store.neighbour_indexes)
    indexed = indexes[(indexes["adapter_id"] == record["id"]) & (indexes["training_set"] == record["training_set"])]
    if indexed.empty:
        st.caption(f"No index of {md(record['training_set'])}'s training emails for this adapter yet.")
        if st.button("Index its training emails (runs as a job)", key=f"{key}_index"):
            job = start_job(settings, JobRequest("diagnose", ("nearest-training-emails",),
                                                 scorer=record["id"]))
            st.success(started_message(job))
        return
    vector = neighbour_query(record["model"], record["path"], str(settings.models_dir), settings.device,
                             settings.max_tokens, mail)
    nearest = stored(settings.store_path, Store.nearest_training_emails, record["id"], record["training_set"], vector, k)
    st.caption(f"Closest of {int(indexed['emails'].iloc[0])} training emails in the adapter's own answer-position "
               "state (cosine similarity); score: the adapter's on that email (> 0: phishing/spam).")
    for row in nearest.itertuples():
        left, middle, right = st.columns([6, 4, 1])
        left.text((row.subject or "(no subject)")[:100])  # escaped: email text is hostile
        middle.caption(f"{label_name(row.label)} · {md(row.corpus)} · similarity {row.similarity:.3f} · "
                       f"score {row.score:+.2f}")
        right.page_link("pages/explain.py", label="Explain", icon=":material/insights:",
                        query_params={"email": row.email_id, "adapters": record.get("name", record["id"])})
