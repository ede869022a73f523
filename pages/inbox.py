"""Inbox: browse emails with every adapter's verdict, misclassified (most wrong) first; suspected label
errors marked (and filtered), and an analyst's corrected label recorded beside the corpus' own."""

import streamlit as st

from data.export import spreadsheet_safe_csv
from data.records import LABEL_NAMES, LEGITIMATE, POSITIVE
from data.scorers import SCORES, names_by_id, resolve_all
from data.store import Store
from pages._cache import email_with_verdicts, inbox_page, results_or_stop, stored
from pages._email_view import show_email
from pages._label_view import show_label_editor, show_suspicion
from pages._neighbours_view import show_nearest_training_emails
from pages._page import warn_of_collapsed
from pages._safe import md
from pages._scorers import choices, record

PAGE_SIZE = 50
OUTCOMES = {"wrong": "misclassified", "fp": "false positives", "fn": "false negatives",
            "correct": "correct", "all": "all scored"}

settings = st.session_state["settings"]
st.title("Inbox")
results = results_or_stop(settings.store_path, "scorers", settings.model)
warn_of_collapsed(results["collapsed"])
corpora = list(results["corpora"]["name"])
if not corpora:
    st.info("No corpus ingested yet: `python cli.py demo` builds the synthetic demo.")
    st.stop()
if results["corpora"]["synthetic"].any():
    st.warning("Corpora marked *synthetic* were generated from templates for the offline demo.")

scorers = results["scorers"]
evaluated = set(results["evaluated"]["adapter_id"])  # the scorers with stored verdicts
offered = choices(scorers, ("adapter", "zero-shot", "bag-of-words", SCORES))
offered = offered[offered["id"].isin(evaluated)]
names = names_by_id(offered)
adapters = list(names)
NONE = "(none: browse all emails)"
LABELS = ["any", LABEL_NAMES[POSITIVE], LABEL_NAMES[LEGITIMATE]]

# A link carries the view: ?adapter=…&corpus=…&show=…&label=…&q=…&email=… (read on first render).
shared = st.query_params
options = [NONE, *adapters]
wanted = next(iter(resolve_all(offered, shared.get_all("adapter"))), NONE if shared.get("adapter") == NONE else None)
top = st.columns([3, 3, 2])
adapter = top[0].selectbox("Adapter", options, index=options.index(wanted) if wanted in options else int(bool(adapters)),
                           format_func=lambda a: names.get(a, a), key="inbox_adapter")
adapter = None if adapter == NONE else adapter
chosen = top[1].multiselect("Corpora", corpora, default=[c for c in shared.get_all("corpus") if c in corpora],
                            key="inbox_corpora")
label = top[2].selectbox("True label", LABELS, index=LABELS.index(shared.get("label", "any"))
                         if shared.get("label") in LABELS else 0, key="inbox_label")
row = st.columns([2, 2, 3, 2])
outcome = row[0].selectbox("Show", list(OUTCOMES), format_func=OUTCOMES.get,
                           index=list(OUTCOMES).index(shared.get("show")) if shared.get("show") in OUTCOMES else 0,
                           key="inbox_outcome") if adapter else "all"
confidence = row[1].slider("Min |score|", 0.0, 10.0, 0.0, 0.5, disabled=adapter is None, key="inbox_confidence")
text = row[2].text_input("Search sender, subject, body", value=shared.get("q", ""), key="inbox_text")
suspects = row[3].checkbox("Suspected label errors only", value=shared.get("suspects") == "1", key="inbox_suspects",
                           help="Emails the label audit (Corpora page) flags: out-of-sample scorers confidently "
                                "contradict their label.")
st.query_params.update({"adapter": names[adapter] if adapter else NONE, "corpus": chosen, "label": label, "show": outcome,
                        "q": text, "suspects": "1" if suspects else "0"})

filters = {"adapter_id": adapter, "corpora": tuple(chosen) or None,
           "label": {"any": None, LABEL_NAMES[POSITIVE]: POSITIVE, LABEL_NAMES[LEGITIMATE]: LEGITIMATE}[label],
           "outcome": outcome, "min_confidence": confidence, "text": text.strip() or None, "suspects_only": suspects}
_, total = inbox_page(settings.store_path, filters, 1, 0)
pages = max(1, -(-total // PAGE_SIZE))
page_number = st.number_input(f"Page (of {pages}; {total} emails)", 1, pages, 1, key="inbox_page")
page, _ = inbox_page(settings.store_path, filters, PAGE_SIZE, (page_number - 1) * PAGE_SIZE)

if page.empty:
    st.info("No email matches these filters.")
    if not st.query_params.get("email"):  # a link that names an email still opens it below
        st.stop()
    selection = None
else:
    table = page.assign(
        label=page["label"].map(LABEL_NAMES),
        verdict=page["predicted"].map(LABEL_NAMES),
        wrong_of=page["adapters_wrong"].astype(str) + "/" + page["adapters_scored"].astype(str),
        mark=[" · ".join(m for m, on in (("⚠ suspected label error", s), ("✎ corrected", c)) if on)
              for s, c in zip(page["suspected"], page["corrected"])],
    )[["corpus", "label", "mark", "verdict", "score", "wrongness", "wrong_of", "truncated_tokens", "subject", "sender",
       "date", "id"]]
    selection = st.dataframe(table, hide_index=True, on_select="rerun", selection_mode="single-row",
                             key="inbox_table", column_config={"wrong_of": "adapters wrong", "id": None,
                                                               "truncated_tokens": "tokens cut"})
    st.download_button("Download this page (CSV)", spreadsheet_safe_csv(table), "phishlens-inbox.csv", "text/csv",
                       key="inbox_download")

rows = selection.selection.rows if selection else []
email_id = page.iloc[rows[0]]["id"] if rows else st.query_params.get("email")
if email_id:
    st.query_params["email"] = email_id
    mail, verdicts = email_with_verdicts(settings.store_path, email_id)
    if mail is None:
        st.warning("That email is not in the store.")
    else:
        st.subheader("Email")
        st.page_link("pages/explain.py", label="Explain this email", icon=":material/insights:",
                     query_params={"email": email_id})
        status = stored(settings.store_path, Store.label_status, email_id)
        show_email(mail, verdicts, key="inbox_email", names=names_by_id(scorers), status=status)
        if status["suspect"]:
            show_suspicion(status, "inbox_suspicion")
        with st.expander("Correct the label", expanded=bool(status["suspect"])):
            show_label_editor(settings.store_path, mail, status, "inbox_label_editor")
        scorer = record(scorers, adapter) if adapter else None
        if scorer is not None and scorer["kind"] == SCORES:
            st.caption(f"{md(scorer['name'])} is an imported score file: a detector PhishLens does not run, so it has "
                       "a verdict here but no explanation, attention or heads.")
        if scorer is not None and scorer["kind"] == "adapter":
            with st.expander(f"Nearest training emails of {md(scorer['name'])}"):
                show_nearest_training_emails(settings, scorer, mail, "inbox_nearest")
else:
    st.caption("Select a row to open the email.")
