"""Live demo: curated example emails, each one click away from its explanation.

Per corpus: the emails most adapters got wrong and the clearest phishing they all got
right (from the results in the store, synthetic demo or real), plus emails the user saved.
"""

import streamlit as st

from data.records import ZERO_SHOT
from pages._cache import curated_examples
from pages._email_view import label_name
from pages._page import open_page
from pages._safe import md

settings, results = open_page(
    "Live demo",
    "Curated examples from the store. One click opens the explanation by the adapters picked here; "
    "explanations already computed open instantly.")
training_sets = list(results["adapters"]["training_set"])
adapters = st.multiselect("Explain with", [ZERO_SHOT, *training_sets], default=training_sets[:2] or [ZERO_SHOT],
                          key="demo_adapters")
examples = curated_examples(settings.store_path)

# A presenter's walk through one failure, in order; each step one click.
specialist = next((t for t in training_sets if t.startswith("specialist-")), None)
worst = examples[examples["wrong"] > 0].head(1) if not examples.empty else examples
with st.expander("Guided walk-through: why the specialist fails", expanded=True):
    steps = [
        ("pages/overview.py", "1 · The failure", "its F1 in domain against out of domain, with intervals", {}),
        ("pages/drivers.py", "2 · What it leans on", "word drivers, shortcut candidates (⚠), corpus fingerprints", {}),
        ("pages/explain.py", "3 · One mistake, word by word", "the email most adapters got wrong, explained",
         {"email": worst["id"].iloc[0], "adapters": [specialist] if specialist else adapters, "method": "gradxinput",
          "nearest": "1"} if len(worst) else {}),
        ("pages/drivers.py", "4 · Which field", "the Field reliance tab: flips when a field is removed or swapped",
         {}),
        ("pages/heads.py", "5 · Inside the model", "which heads the score depends on, layer by layer",
         {"adapter": specialist} if specialist else {}),
    ]
    for number, (page, label, what, params) in enumerate(steps):
        left, right = st.columns([2, 5])
        if left.button(label, key=f"demo_step_{number}", width="stretch"):
            st.switch_page(page, query_params=params or None)
        right.caption(what)

if examples.empty:
    st.info("No scored emails yet: run the demo (`bash tasks.sh run`) or an evaluation first.")
    st.stop()

for corpus, group in examples.groupby("corpus", sort=False):
    st.subheader(md(corpus))
    for row in group.itertuples():
        left, middle, right = st.columns([6, 3, 1])
        left.text(row.subject[:100] or "(no subject)")  # escaped: email text is hostile
        if row.wrong != row.wrong:  # NaN: a saved email no adapter scored yet
            detail = row.why
        elif row.wrong:
            detail = f"{int(row.wrong)} of {int(row.adapters)} adapters wrong"
        else:
            detail = f"clear phishing: all {int(row.adapters)} adapters right"
        middle.caption(f"{label_name(row.label)} · {detail}")
        right.page_link("pages/explain.py", label="Explain", icon=":material/insights:",
                        query_params={"email": row.id, "adapters": adapters, "method": "shap"})
