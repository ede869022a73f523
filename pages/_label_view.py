"""One email's label: the label audit's evidence when it suspects it, and the analyst's correction
(recorded with a note beside the corpus' own label, which is never changed; undoable)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from data.records import LABEL_NAMES, LEGITIMATE, POSITIVE, Email
from data.store import Store, StoreError
from pages._email_view import label_name
from pages._safe import md


def show_suspicion(status: dict, key: str) -> None:
    """Why the label audit suspects the label: the out-of-sample probability, the adapters that never
    trained on the email, and its nearest emails' labels."""
    evidence = status["suspect"]
    bag_of_words = evidence["bag_of_words_p_phishing"]
    bag_of_words = bag_of_words if evidence["given_label"] == POSITIVE else 1 - bag_of_words
    adapters = (f"{evidence['adapters_against_label']} of the {len(evidence['adapters'])} adapters that never "
                "trained on it say otherwise" if evidence["adapters"]
                else "no adapter that never trained on it has scored it")
    st.warning(f"**Suspected label error.** Scorers that never trained on this email give the corpus' label "
               f"({label_name(evidence['given_label'])}) a probability of {evidence['p_given_label']:.2f} "
               f"(the cross-validated bag of words alone: {bag_of_words:.2f}). {adapters.capitalize()}; "
               f"{evidence['neighbours_against_label']} of its {len(evidence['neighbours'])} nearest emails "
               "carry the other label.")
    if evidence["neighbours"]:
        st.caption("Its nearest emails in the store (TF-IDF cosine) and their labels")
        near = pd.DataFrame(evidence["neighbours"]).assign(label=lambda f: f["label"].map(LABEL_NAMES))
        st.dataframe(near, hide_index=True, key=f"{key}_neighbours")


def show_label_editor(store_path, mail: Email, status: dict, key: str) -> None:
    """Record a corrected label with a note, or undo the current correction."""
    if status.get("corrected") is not None:
        st.caption(f"Corrected to {label_name(status['corrected'])} on {status['corrected_at']:%Y-%m-%d %H:%M} UTC. "
                   "The corpus' own label is kept; undoing restores it everywhere.")
        if st.button("Undo the correction", key=f"{key}_undo"):
            _write(store_path, lambda store: store.undo_label_correction(mail.id), "Correction undone.")
    with st.form(f"{key}_form"):
        current = status["corrected"] if status.get("corrected") is not None else mail.label
        options = [POSITIVE, LEGITIMATE]
        label = st.radio("Correct label", options, index=options.index(1 - current), format_func=LABEL_NAMES.get,
                         horizontal=True, key=f"{key}_label")
        note = st.text_input("Why (kept with the correction)", key=f"{key}_note", max_chars=500)
        if st.form_submit_button("Record the corrected label"):
            if not note.strip():
                st.error("Say why the label is wrong: the note is kept with the correction.")
            else:
                _write(store_path, lambda store: store.correct_label(mail.id, int(label), note),
                       f"Recorded: {LABEL_NAMES[int(label)]}.")


def _write(store_path, change, done: str) -> None:
    try:
        with Store.open(store_path) as store:
            change(store)
    except (StoreError, ValueError) as exc:
        st.error(md(exc, 500))
        return
    st.toast(done)
    st.rerun()
