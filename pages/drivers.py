"""Drivers: the words an adapter relies on across a corpus, and shortcut candidates.

A shortcut candidate is a strong driver that marks one corpus (whatever the label)
rather than phishing: the signature lines and boilerplate a specialist learns, and the
reason it fails out of domain. Sweeps run as jobs (`cli.py explain`), resumable.
"""

import pandas as pd
import streamlit as st

from data.export import download_name, spreadsheet_safe_csv
from data.records import JobRequest
from data.scorers import names_by_id
from data.store import Store
from diagnostics.analyses.drivers import explanation_shift
from diagnostics.analyses.explainers import METHODS
from diagnostics.contracts.registry import for_page
from diagnostics.runners.background import start_job
from pages._cache import drivers_and_shortcuts, stored
from pages._charts import driver_bars, shift_bars
from pages._kinds import show_registered
from pages._page import open_page
from pages._safe import md, started_message, tab_param
from pages._scorers import pick_scorer

settings, results = open_page(
    "Drivers",
    "What an adapter relies on across a corpus: its word drivers, how they shift between corpora, which fields "
    "its verdicts rest on, and how recognisable each corpus is.")
corpora = list(results["corpora"]["name"])
scorers = results["scorers"]
names = names_by_id(scorers)


def with_names(sweeps):
    """Stored sweeps with their scorer's display name (data.scorers)."""
    return sweeps.assign(scorer=[names.get(i, t) for i, t in zip(sweeps["adapter_id"], sweeps["training_set"])])


grid_diagnostics = for_page("drivers", kind="sample_grid")  # registered sample diagnostics (diagnostics/contracts/registry.py)
tab_names = ["Word drivers", "Explanation shift", *(d.title for d in grid_diagnostics)]
words_tab, shift_tab, *grid_tabs = st.tabs(tab_names, default=tab_param(tab_names))


def show_word_drivers() -> None:
    st.caption("Attributions summed per word over a sample of a test split. ⚠ marks shortcut candidates: top "
               "drivers at least 5× more frequent in one corpus than in the others (any label), in ≥ 5% of its emails.")
    sweeps = stored(settings.store_path, Store.explanation_sweeps)
    with st.expander("Explain a sample of a test split (runs as a job)", expanded=sweeps.empty):
        with st.form("drivers_start"):
            cols = st.columns(4)
            job_scorer = pick_scorer("Adapter", scorers, "drivers_job_set", "", container=cols[0])
            job_corpus = cols[1].selectbox("Corpus", corpora, key="drivers_job_corpus")
            job_size = cols[2].number_input("Sample size", 10, 5000, 200, step=10, key="drivers_job_size")
            job_method = cols[3].selectbox("Method", METHODS, key="drivers_job_method",
                                           help="per email on 2 CPU cores: shap ≈ 15–30 s, integrated-gradients ≈ 3 s, "
                                                "gradxinput < 1 s (its signs can mislead)")
            if st.form_submit_button("Start"):
                job = start_job(settings, JobRequest("explain", corpus=job_corpus, scorer=job_scorer,
                                                     sample_size=job_size, options=(("method", job_method),)))
                st.success(started_message(job) + " Results appear here as emails are explained.")

    if sweeps.empty:
        st.info("No corpus has been explained yet: start a sample above (or `python cli.py explain --corpus NAME`).")
        return

    st.dataframe(sweeps.drop(columns=["params"]), hide_index=True, key="drivers_sweeps")
    sweeps = with_names(sweeps)
    sweeps = sweeps.assign(choice=sweeps["scorer"] + " · " + sweeps["method"])
    choices = list(dict.fromkeys(sweeps["choice"]))
    query = st.query_params
    wanted = [c for c in query.get_all("compare") if c in choices]
    picked = st.multiselect("Adapters to compare (one or two)", choices, default=wanted or choices[:2],
                            max_selections=2, key="drivers_compare")
    chosen_corpora = st.multiselect("Explained corpora to include (default: all)", sorted(set(sweeps["corpus"])),
                                    key="drivers_corpora")
    st.query_params.update({"compare": picked})

    for column, choice in zip(st.columns(max(len(picked), 1)), picked):
        sweep = sweeps[sweeps["choice"] == choice].iloc[0]
        drivers, shortcuts = drivers_and_shortcuts(settings.store_path, sweep["adapter_id"], sweep["method"],
                                                   sweep["params"], chosen_corpora)
        with column:
            st.subheader(md(choice))
            explained = sweeps[sweeps["choice"] == choice]
            st.caption(md(", ".join(f"{r.corpus}: {r.emails} emails" for r in explained.itertuples())))
            flagged = set(shortcuts.loc[shortcuts["shortcut"], "feature"]) if len(shortcuts) else set()
            st.plotly_chart(driver_bars(drivers, 15, flagged), key=f"drivers_bars_{choice}")
            st.markdown("**Shortcut candidates** (top drivers by |total|; share = fraction of a corpus' emails containing the word)")
            st.dataframe(pd.DataFrame(shortcuts).sort_values(["shortcut", "ratio"], ascending=False),
                         hide_index=True, key=f"drivers_shortcuts_{choice}",
                         column_config={"share_there": st.column_config.NumberColumn(format="%.2f"),
                                        "share_elsewhere": st.column_config.NumberColumn(format="%.3f"),
                                        "ratio": st.column_config.NumberColumn(format="%.1f")})
            st.download_button("Drivers (CSV)", spreadsheet_safe_csv(drivers), download_name("drivers", choice), "text/csv",
                               key=f"drivers_csv_{choice}")


def show_explanation_shift() -> None:
    """One adapter in domain beside out of domain, or two adapters on one split, from stored sweeps."""
    sweeps = stored(settings.store_path, Store.explanation_sweeps)
    if len(sweeps) < 2:
        st.info("Explain at least two samples (an adapter on two corpora, or two adapters on one) in the Word "
                "drivers tab; their drivers are then compared here.")
        return
    sweeps = with_names(sweeps)
    sweeps = sweeps.assign(choice=sweeps["scorer"] + " · " + sweeps["method"] + " · " + sweeps["corpus"]
                           + " (" + sweeps["emails"].astype(str) + " emails)")
    choices = list(sweeps["choice"])
    left, right = st.columns(2)
    first = left.selectbox("From", choices, key="drivers_shift_first")
    second = right.selectbox("To", [c for c in choices if c != first], key="drivers_shift_second")
    a, b = (sweeps[sweeps["choice"] == c].iloc[0] for c in (first, second))
    drivers_a, _ = drivers_and_shortcuts(settings.store_path, a["adapter_id"], a["method"], a["params"], [a["corpus"]])
    drivers_b, _ = drivers_and_shortcuts(settings.store_path, b["adapter_id"], b["method"], b["params"], [b["corpus"]])
    shift = explanation_shift(drivers_a, drivers_b)
    st.plotly_chart(shift_bars(shift, first, second), key="drivers_shift_bars")
    st.dataframe(shift.head(40), hide_index=True, key="drivers_shift_table")
    st.download_button("Explanation shift (CSV)", spreadsheet_safe_csv(shift), download_name("shift", first, second),
                       "text/csv", key="drivers_shift_csv")


with words_tab:
    show_word_drivers()
with shift_tab:
    show_explanation_shift()
for entry, tab in zip(grid_diagnostics, grid_tabs):
    with tab:
        show_registered(settings, entry, scorers, corpora)
