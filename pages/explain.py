"""Explain: which words, fields and links pushed each adapter towards phishing or legitimate.

SHAP maps come progressively (fields, then sentences, then words) and are cached in the
store, so reopening an explained email is instant. Email text is shown escaped only.
"""

import pandas as pd
import streamlit as st

from diagnostics.analyses.comparison import adapter_disabled, lora_delta
from data.store import Store
from pages._cache import classifier, email_with_verdicts, stored
from pages._email_view import label_text, shown_label
from pages._explain_view import ExplanationView, pick_email, pick_method
from pages._neighbours_view import show_nearest_training_emails
from pages._page import open_page
from pages._safe import md
from pages._scorers import pick_scorers, record, show_readout_note
from data.records import CLASSIFICATION_HEAD
from data.scorers import names_by_id

settings, results = open_page(
    "Explain an email",
    "Red pushed the adapter towards phishing/spam, blue towards legitimate. Values are in score units "
    "(logit phishing − logit legitimate); SHAP values add up to the score.")
scorers = results["scorers"]
query = st.query_params

left, right = st.columns([2, 1])
with right:
    first_adapter = list(scorers.loc[scorers["kind"] == "adapter", "id"][:1])
    picked = pick_scorers("Adapters", scorers, "explain_adapters", "adapters",
                          default=first_adapter or list(scorers.loc[scorers["kind"] == "zero-shot", "id"][:1]))
    method = pick_method("explain_method")
    show_delta = st.toggle("LoRA delta (adapter minus base model)", value=query.get("delta") == "1",
                           key="explain_delta")
with left:
    first = record(scorers, picked[0]) if picked else None
    mail, from_store = pick_email(settings, "explain", first["id"] if first and first["kind"] == "adapter" else None)
    if from_store:  # the label as the Inbox shows it: corrected, suspected (the note is an analyst's text: as text)
        st.text(f"Label: {label_text(stored(settings.store_path, Store.label_status, mail.id), mail.label)}")

st.query_params.update({"email": mail.id if from_store else "", "method": method,
                        "delta": "1" if show_delta else "0", "source": "store" if from_store else "paste"})
if not picked:
    st.info("Pick at least one adapter.")
    st.stop()

view = ExplanationView(settings)
for scorer_id in picked:
    scorer = record(scorers, scorer_id)
    name, adapter = scorer["name"], scorer if scorer["kind"] == "adapter" else None
    loaded = classifier(scorer["model"], scorer["path"] if adapter else None, str(settings.models_dir), settings.device)
    st.divider()
    st.subheader(name)
    show_readout_note(scorer)
    key = f"explain_{scorer_id}"
    adapted = view.explained(loaded, mail, method, key, save=from_store)
    if show_delta and adapter is not None and scorer["readout"] == CLASSIFICATION_HEAD:
        st.caption("No LoRA delta: the base model has no classification head, so it has no score to subtract.")
    elif show_delta and adapter is not None and adapted is not None:
        st.caption("The base model with the adapter switched off, then the difference: what fine-tuning changed.")
        with adapter_disabled(loaded) as base_view:
            base = view.explained(base_view, mail, method, f"{key}_base", save=from_store)
        view.draw(lora_delta(adapted, base), f"LoRA delta: {md(name)} minus base", f"{key}_delta")
    with st.expander(f"Nearest training emails of {md(name)}", expanded=bool(query.get("nearest"))):
        show_nearest_training_emails(settings, adapter, mail, f"{key}_nearest")

if from_store:
    _, verdicts = email_with_verdicts(settings.store_path, mail.id)
    with st.expander("Stored verdicts of every adapter"):
        names = names_by_id(scorers)
        status = stored(settings.store_path, Store.label_status, mail.id)
        # true_label: the label verdicts are judged against, the analysts' correction where there is one
        st.dataframe(pd.DataFrame(verdicts).assign(scorer=lambda v: v["adapter_id"].map(names),
                                                   true_label=shown_label(status, mail.label)),
                     hide_index=True, key="explain_verdicts")
