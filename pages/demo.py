"""Live demo: curated example emails, each one click away from its explanation.

Per corpus: the emails most adapters got wrong and the clearest phishing they all got
right (from the results in the store, synthetic demo or real), plus emails the user saved.
"""

import streamlit as st

from data.scorers import names_by_id
from data.store import Store
from diagnostics.analyses.walkthrough import WALKTHROUGH_METHOD
from pages._cache import stored, walkthrough
from pages._email_view import label_name
from pages._page import open_page
from pages._safe import md
from pages._scorers import choices, pick_scorers, record

settings, results = open_page(
    "Live demo",
    "Curated examples from the store. One click opens the explanation by the adapters picked here; "
    "explanations already computed open instantly.")
scorers = results["scorers"]
names = names_by_id(scorers)
offered = list(choices(scorers)["id"])
adapter_ids = [i for i in offered if record(scorers, i)["kind"] == "adapter"]
picked = pick_scorers("Explain with", scorers, "demo_adapters", "explain_with", default=adapter_ids[:2] or offered[:1])
adapters = [names[i] for i in picked]  # what the Explain links carry (data.scorers: unique display names)
examples = stored(settings.store_path, Store.curated_examples)

# A presenter's walk through one failure, in order; each step one click. The failure is the
# specialist's largest in- vs out-of-domain F1 drop in the store (diagnostics/analyses/walkthrough.py).
walk = walkthrough(settings.store_path)
with st.expander("Guided walk-through: why the specialist fails", expanded=True):
    if walk is None:
        st.info("The walk-through needs an evaluated specialist adapter and a corpus it was not trained on: "
                "run the demo (`bash tasks.sh run`) or `python cli.py demo --data DIR`.")
    else:
        specialist = names.get(walk.adapter_id, walk.training_set)
        sweep = f"{specialist} · {WALKTHROUGH_METHOD}"
        beside = [specialist, *([names.get(walk.generalist_id, walk.generalist[0])] if walk.generalist else [])]
        st.markdown(f"**{md(walk.training_set)}** scores F1 {walk.home_f1:.2f} on its own corpus "
                    f"({md(walk.home_corpus)}) and {walk.failing_f1:.2f} on {md(walk.failing_corpus)} "
                    f"(n = {walk.failing_n}). Six clicks to why:")
        steps = [
            ("pages/overview.py", "1 · The failure", "its F1 in domain against out of domain, with 95% intervals",
             {}),
            ("pages/drivers.py", "2 · What it leans on",
             "its word drivers on every corpus; ⚠ marks shortcut candidates (words of one corpus, any label)",
             {"compare": [sweep], "tab": "Word drivers"}),
            ("pages/explain.py", "3 · One mistake, word by word",
             f"its most confident wrong verdict on {md(walk.failing_corpus)}, beside the generalist, with the "
             "training emails it resembles", {"email": walk.mistake_id, "adapters": beside,
                                              "method": WALKTHROUGH_METHOD, "nearest": "1"} if walk.mistake_id else {}),
            ("pages/drivers.py", "4 · Which field",
             f"field reliance on {md(walk.home_corpus)}: how often its verdict flips when a field is removed or "
             "swapped, beside the generalist", {"tab": "Field reliance", "corpus": walk.home_corpus}),
            ("pages/heads.py", "5 · Inside the model",
             f"how much each head writes into its score on {md(walk.failing_corpus)} (direct logit attribution)",
             {"adapter": specialist, "tab": "Direct logit attribution"}),
            ("pages/inbox.py", "6 · Or is it the label?",
             "an email whose label scorers that never trained on it confidently contradict (the label audit), "
             "with the evidence; an analyst records the corrected label beside the corpus' own",
             {"suspects": "1", "adapter": specialist, "email": walk.suspect_id} if walk.suspect_id else
             {"suspects": "1"}),
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
