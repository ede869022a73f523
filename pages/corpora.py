"""Corpora: what was ingested, how it was normalised, deduplicated and split; and the audits of the
emails themselves (suspected label errors, near-duplicates across corpora)."""

import pandas as pd
import streamlit as st

from data.records import LABEL_NAMES
from diagnostics.contracts.registry import for_page
from pages._cache import results_or_stop
from pages._kinds import show_registered

settings = st.session_state["settings"]
st.title("Corpora")

results = results_or_stop(settings.store_path, "corpora")

corpora = results["corpora"]
if corpora.empty:
    st.info("No corpus ingested yet: `python cli.py ingest --data ../shared/data` or `python cli.py ingest --synthetic`.")
    st.stop()

if corpora["synthetic"].any():
    st.warning("Corpora marked *synthetic* were generated from templates for the offline demo.")
st.caption("Label 1 is the classifier's positive class (phishing/spam); *label meaning* says what it means in "
           "each corpus. Duplicates (same normalised subject and body) are dropped within a corpus and against "
           "corpora ingested earlier.")
st.dataframe(
    corpora[["name", "format", "label_meaning", "label_convention", "synthetic", "normalisation", "parsed",
             "parse_errors", "duplicates_within", "label_conflicts", "duplicates_across", "kept", "source"]],
    hide_index=True, key="corpora_table",
)

st.subheader("Splits")
splits = results["splits"].pivot_table(index=["corpus", "split"], columns="label", values="n", fill_value=0)
splits.columns = [LABEL_NAMES[c] for c in splits.columns]
st.dataframe(splits.reset_index(), hide_index=True, key="corpora_splits")

st.subheader("Training sets")
st.dataframe(results["training_sets"], hide_index=True, key="corpora_training_sets")

if len(results["errors"]):
    st.subheader("Inputs that could not be parsed")
    st.dataframe(results["errors"], hide_index=True, key="corpora_errors")

# The audits of the emails (registered diagnostics of this page), drawn by their kind.
for entry in for_page("corpora"):
    st.subheader(entry.title)
    show_registered(settings, entry, pd.DataFrame(), list(corpora["name"]))
    if entry.name == "label-audit":
        st.page_link("pages/inbox.py", label="Open the suspects in the Inbox (evidence, correct a label)",
                     icon=":material/inbox:", query_params={"suspects": "1"})
