"""Analyze: paste or upload an email, score it with adapters, optionally keep it."""

import pandas as pd
import streamlit as st

from data.corpora import USER_CORPUS, save_user_email
from data.parse import ParseError, make_email, parse_message_bytes, parse_pasted_text
from data.records import LABEL_NAMES, POSITIVE
from pages._cache import classifier, model_lock
from pages._email_view import show_email
from pages._neighbours_view import show_nearest_training_emails
from pages._page import open_page
from pages._safe import MAX_PASTE_CHARS, PASTE_HELP, md
from pages._scorers import choices, pick_scorers, record

settings, results = open_page(
    "Analyze an email",
    "Paste raw text or a full RFC822 message (headers first), or upload a .eml / .txt file. It is parsed "
    "with the same code as the corpora; nothing in it is rendered, run or fetched.")

uploaded = st.file_uploader("Upload .eml or .txt", type=["eml", "txt"], key="analyze_upload")
pasted = st.text_area("…or paste it here", height=200, key="analyze_text", max_chars=MAX_PASTE_CHARS,
                      help=PASTE_HELP)
if len(pasted) >= MAX_PASTE_CHARS:  # the box keeps the first MAX_PASTE_CHARS characters of a longer paste
    st.warning(f"The paste filled the box's {MAX_PASTE_CHARS:,} characters, so anything after them was cut: "
               f"upload a larger message as a .eml file (up to 32 MB) instead.")
scorers = results["scorers"]
picked = pick_scorers("Score with", scorers, "analyze_adapters", "adapters", default=list(choices(scorers)["id"]))

if st.button("Analyze", type="primary", key="analyze_go"):
    st.session_state["analyze_requested"] = True  # keeps the result on the page's later reruns (Save, …)
if not (uploaded or pasted.strip()) or not st.session_state.get("analyze_requested"):
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
    from diagnostics.analyses.evaluate import score_one

    for scorer_id in picked:
        scorer = record(scorers, scorer_id)
        loaded = classifier(scorer["model"], scorer["path"] if scorer["kind"] == "adapter" else None,
                            str(settings.models_dir), settings.device)
        with model_lock():
            rows.append({"training_set": scorer["name"], **score_one(loaded, mail, settings.max_tokens)})

show_email(mail, pd.DataFrame(rows), key="analyze_email", label_known=False)

if pasted.strip() and uploaded is None and st.button("Explain this email", icon=":material/insights:",
                                                     key="analyze_explain"):
    st.session_state["explain_text"] = pasted  # the Explain page's paste box
    st.switch_page("pages/explain.py", query_params={"source": "paste", "adapters": [
        record(scorers, i)["name"] for i in picked]})
for scorer_id in picked:
    scorer = record(scorers, scorer_id)
    if scorer["kind"] == "adapter":
        with st.expander(f"Nearest training emails of {md(scorer['name'])}"):
            show_nearest_training_emails(settings, scorer, mail, f"analyze_nearest_{scorer_id}")

st.subheader(f"Keep it in the '{USER_CORPUS}' corpus")
keep_label = st.radio("Its true label", [LABEL_NAMES[POSITIVE], *[n for k, n in LABEL_NAMES.items() if k != POSITIVE]],
                      horizontal=True, key="analyze_label")
if st.button("Save", key="analyze_save"):
    saved = save_user_email(settings.store_path, mail, label=int(keep_label == LABEL_NAMES[POSITIVE]))
    st.success("Saved." if saved else "Already in the store (same content hash): nothing added.")
