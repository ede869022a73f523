"""Explain: which words, fields and links pushed each adapter towards phishing or legitimate.

SHAP maps come progressively (fields, then sentences, then words) and are cached in the
store, so reopening an explained email is instant. Email text is shown escaped only.
"""

import pandas as pd
import streamlit as st

from data.records import ZERO_SHOT
from diagnostics.comparison import adapter_disabled, lora_delta
from pages._cache import classifier, email_with_verdicts
from pages._explain_view import ExplanationView, pick_email, pick_method
from pages._neighbours_view import show_nearest_training_emails
from pages._page import open_page
from pages._safe import md

settings, results = open_page(
    "Explain an email",
    "Red pushed the adapter towards phishing/spam, blue towards legitimate. Values are in score units "
    "(logit phishing − logit legitimate); SHAP values add up to the score.")
adapters = results["adapters"]
by_name = {ZERO_SHOT: None, **{r["training_set"]: r for r in adapters.to_dict("records")}}
query = st.query_params

left, right = st.columns([2, 1])
with right:
    wanted = [a for a in query.get_all("adapters") if a in by_name]
    default = wanted or ([next(iter(adapters["training_set"]))] if len(adapters) else [ZERO_SHOT])
    picked = st.multiselect("Adapters", list(by_name), default=default, key="explain_adapters")
    method = pick_method("explain_method")
    show_delta = st.toggle("LoRA delta (adapter minus base model)", value=query.get("delta") == "1",
                           key="explain_delta")
with left:
    first = by_name.get(picked[0]) if picked else None
    mail, from_store = pick_email(settings, "explain", first["id"] if first else None)

st.query_params.update({"email": mail.id if from_store else "", "adapters": picked, "method": method,
                        "delta": "1" if show_delta else "0", "source": "store" if from_store else "paste"})
if not picked:
    st.info("Pick at least one adapter.")
    st.stop()

view = ExplanationView(settings)
for name in picked:
    record = by_name[name]
    loaded = classifier(record["model"] if record else settings.model, record["path"] if record else None,
                        str(settings.models_dir), settings.device)
    st.divider()
    st.subheader(name)
    adapted = view.explained(loaded, mail, method, f"explain_{name}", save=from_store)
    if show_delta and record is not None and adapted is not None:
        st.caption("The base model with the adapter switched off, then the difference: what fine-tuning changed.")
        with adapter_disabled(loaded) as base_view:
            base = view.explained(base_view, mail, method, f"explain_{name}_base", save=from_store)
        view.draw(lora_delta(adapted, base), f"LoRA delta: {md(name)} minus base", f"explain_{name}_delta")
    with st.expander(f"Nearest training emails of {md(name)}", expanded=bool(query.get("nearest"))):
        show_nearest_training_emails(settings, record, mail, f"explain_{name}_nearest")

if from_store:
    _, verdicts = email_with_verdicts(settings.store_path, mail.id)
    with st.expander("Stored verdicts of every adapter"):
        st.dataframe(pd.DataFrame(verdicts), hide_index=True, key="explain_verdicts")
