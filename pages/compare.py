"""Compare: one email across models and adapters — verdicts side by side, their maps on the
same characters (whatever each model's tokenizer), and how much they agree; and, for a
corpus, the emails on which adapters disagree."""

import numpy as np
import pandas as pd
import streamlit as st

from data.records import label_name, verdict
from data.store import Store
from diagnostics.analyses.comparison import agreement
from pages._cache import classifier, stored
from pages._charts import agreement_heatmap
from pages._explain_view import ExplanationView, pick_email, pick_method
from pages._page import open_page
from pages._safe import md
from pages._scorers import choices, pick_scorers, record

settings, results = open_page(
    "Compare models on one email",
    "Each map is on the same email text, so maps from different tokenizers line up character by "
    "character. Agreement is the rank correlation of their character-level attributions.")
scorers = results["scorers"]
long_names = dict(zip(scorers["id"], scorers["long_name"]))  # this page compares models: names always say which

left, right = st.columns([2, 1])
with right:
    offered = list(choices(scorers)["id"])
    zero_shot = [i for i in offered if record(scorers, i)["kind"] == "zero-shot"]
    picked = pick_scorers("Models and adapters (two or more)", scorers, "compare_picked", "compare",
                          default=(zero_shot[:1] + [i for i in offered if i not in zero_shot])[:2], long_names=True)
    method = pick_method("compare_method")
with left:
    first = record(scorers, picked[0]) if picked else None
    mail, from_store = pick_email(settings, "compare", first["id"] if first and first["kind"] == "adapter" else None)
st.query_params.update({"email": mail.id if from_store else "", "method": method,
                        "source": "store" if from_store else "paste"})
if len(picked) < 2:
    st.info("Pick at least two models or adapters.")
    st.stop()

view = ExplanationView(settings)
explanations = {}
for row_start in range(0, len(picked), 3):
    for column, scorer_id in zip(st.columns(3), picked[row_start: row_start + 3]):
        scorer = record(scorers, scorer_id)
        name = long_names[scorer_id]
        loaded = classifier(scorer["model"], scorer["path"] if scorer["kind"] == "adapter" else None,
                            str(settings.models_dir), settings.device)
        with column:
            st.subheader(md(name))
            explanation = view.explained(loaded, mail, method, f"compare_{scorer_id}", save=from_store, charts=False)
            if explanation is None:
                st.stop()
            explanations[name] = explanation

st.divider()
verdicts = pd.DataFrame([{"model / adapter": name, "verdict": label_name(verdict(e.score)),
                          "score": e.score, "base (empty email)": e.base_value,
                          "top word": e.text[slice(*e.spans[int(np.argmax(np.abs(e.values)))])] if e.values else ""}
                         for name, e in explanations.items()])
st.dataframe(verdicts, hide_index=True, key="compare_verdicts")
names = list(explanations)
matrix = np.array([[agreement(explanations[a], explanations[b]) for b in names] for a in names])
st.plotly_chart(agreement_heatmap(names, matrix), key="compare_agreement")

st.subheader("Where adapters disagree")
corpus = st.selectbox("Corpus", list(results["corpora"]["name"]), key="compare_corpus")
found = stored(settings.store_path, Store.disagreements, corpus, tuple(picked))
if found.empty:
    st.caption("No email of this corpus was scored by all of them with different verdicts.")
else:
    selection = st.dataframe(found, hide_index=True, key="compare_disagreements", on_select="rerun",
                             selection_mode="single-row",
                             column_config={"id": None, "say_phishing": "adapters saying phishing",
                                            "spread": "score spread"})
    st.caption("Select a row to compare the adapters on that email.")
    rows = selection.selection.rows if selection else []
    if rows and found.iloc[rows[0]]["id"] != mail.id:
        st.query_params["email"] = found.iloc[rows[0]]["id"]
        st.session_state.pop("compare_email", None)
        st.rerun()
