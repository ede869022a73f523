"""Analyze: paste or upload an email, score it with adapters, optionally keep it."""

import pandas as pd
import streamlit as st

from data.corpora import USER_CORPUS, save_user_email
from data.parse import ParseError, make_email, parse_message_bytes, parse_pasted_text
from pages._cache import classifier, results_or_stop
from pages._email_view import show_email
from pages._safe import md

settings = st.session_state["settings"]
st.title("Analyze an email")
st.caption("Paste raw text or a full RFC822 message (headers first), or upload a .eml / .txt file. It is parsed "
           "with the same code as the corpora; nothing in it is rendered, run or fetched.")

results = results_or_stop(settings.store_path, "overview")
adapters = results["adapters"]

uploaded = st.file_uploader("Upload .eml or .txt", type=["eml", "txt"], key="analyze_upload")
pasted = st.text_area("…or paste it here", height=200, key="analyze_text")
choices = ["zero-shot (base model)", *adapters["training_set"]]
picked = st.multiselect("Score with", choices, default=choices, key="analyze_adapters")

if not (uploaded or pasted.strip()):
    st.stop()
try:
    if uploaded is not None:
        fields, truncated = parse_message_bytes(uploaded.getvalue(), settings.parse_limits)
    else:
        fields, truncated = parse_pasted_text(pasted, settings.parse_limits)
except ParseError as exc:
    st.error(f"Could not read this email: {md(exc)}")
    st.stop()
mail = make_email(fields, USER_CORPUS, label=1, source_ref=uploaded.name if uploaded else "pasted",
                  lowercase=settings.lowercase, truncated=truncated)

rows = []
with st.spinner("Scoring…"):
    from models.scoring import prompt_builder, score_prompts

    for name in picked:
        if name.startswith("zero-shot"):
            loaded = classifier(settings.model, None, str(settings.models_dir), settings.device)
        else:
            record = adapters[adapters["training_set"] == name].iloc[0]
            loaded = classifier(record["model"], record["path"], str(settings.models_dir), settings.device)
        prompt = prompt_builder(loaded, settings.max_tokens).build(mail)
        score = float(score_prompts(loaded, [prompt.input_ids])[0])
        rows.append({"training_set": name, "model": loaded.spec.name, "adapter_id": loaded.adapter_id,
                     "score": score, "predicted": int(score > 0), "true_label": -1,
                     "truncated_tokens": prompt.truncated_tokens})

show_email(mail, pd.DataFrame(rows), key="analyze_email", label_known=False)

st.subheader(f"Keep it in the '{USER_CORPUS}' corpus")
keep_label = st.radio("Its true label", ["phishing/spam", "legitimate"], horizontal=True, key="analyze_label")
if st.button("Save", key="analyze_save"):
    saved = save_user_email(settings.store_path, mail, label=int(keep_label == "phishing/spam"))
    st.success("Saved." if saved else "Already in the store (same content hash): nothing added.")
