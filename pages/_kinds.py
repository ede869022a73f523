"""One drawer per result kind (diagnostics/contracts/registry.py's KINDS) for the registered
diagnostics a page lists: a form that starts the diagnostic as a job, and its stored results read
by kind (pages._cache.kind_results / kind_result). A page draws every entry of a kind with
`show_registered`, so a new diagnostic of an existing kind appears on its page with no page code.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import streamlit as st

from data.export import download_name, spreadsheet_safe_csv
from data.records import LABEL_NAMES, JobRequest
from data.scorers import names_by_id
from diagnostics.runners.background import start_job
from data.store import Store
from pages._cache import analysis, kind_result, kind_results, stored
from diagnostics.analyses.per_head import REMAINDER, head_grid
from pages._charts import curve_figure, grid_heatmap, head_heatmap, share_bars
from pages._safe import code, md, started_message
from pages._scorers import pick_scorer


def start_form(settings, entry, key: str, scorers, corpora: list[str], expanded: bool,
               adapter: str | None = None, min_size: int = 4) -> None:
    """An expander with the form that starts a registered diagnostic as `cli.py diagnose` on one
    scorer (`scorers`: the catalogue, data.scorers; `adapter`: the id preselected) and one corpus
    unless the diagnostic samples every corpus."""
    with st.expander(f"Compute {entry.title.lower()} (runs as a job)", expanded=expanded):
        with st.form(f"{key}_start"):
            cols = st.columns(3)
            job_scorer = pick_scorer("Adapter", scorers, f"{key}_set", "", default=adapter, container=cols[0])
            if entry.scope == "corpus":
                job_corpus = cols[1].selectbox("Corpus", corpora, key=f"{key}_corpus")
            else:
                job_corpus = None
                cols[1].caption("Samples every corpus' test split.")
            job_size = cols[2].number_input("Test emails (per corpus)", min_size, 5000, 100, step=10,
                                            key=f"{key}_size")
            if st.form_submit_button("Start"):
                job = start_job(settings, JobRequest("diagnose", (entry.name,), corpus=job_corpus,
                                                     scorer=job_scorer, sample_size=job_size))
                st.success(started_message(job))


def show_sample_grid(settings, entry, scorers, corpora: list[str], adapter: str | None = None) -> None:
    """Kind "sample_grid": start form and stored results side by side as one heatmap with 95%
    intervals in the hover."""
    key = f"grid_{entry.name}"
    st.caption(entry.question)
    stored = kind_results(settings.store_path, entry.kind, entry.name)
    start_form(settings, entry, key, scorers, corpora, expanded=stored.empty)
    if stored.empty:
        st.info(f"Nothing stored yet: start it above (or {code(f'python cli.py diagnose {entry.name}')}).")
        return
    names = names_by_id(scorers)
    choices = {f"{names.get(r.adapter_id, r.training_set)} · {r.corpus} · n={r.n}": r for r in stored.itertuples()}
    labels = list(choices)
    # A link may name a corpus (the Live demo's walk-through does): its results first, side by side.
    on_corpus = [label for label in labels if choices[label].corpus == st.query_params.get("corpus")]
    picked = st.multiselect("Results side by side (e.g. the specialist beside the generalist)", labels,
                            default=(on_corpus or labels)[:2], key=f"{key}_results")
    if not picked:
        return
    frames = [(label, kind_result(settings.store_path, entry.kind, entry.name, choices[label].adapter_id,
                                        choices[label].params)) for label in picked]
    counts = frames[0][1]["column"].value_counts()
    measures = [c for c in dict.fromkeys(frames[0][1]["column"]) if counts[c] > 2] or [entry.measure]
    measure = st.radio("Colour by", measures, horizontal=True, key=f"{key}_measure",
                       index=measures.index(entry.measure) if entry.measure in measures else 0)
    st.plotly_chart(grid_heatmap(frames, measure, f"{entry.title}: {measure}"), key=f"{key}_heatmap")
    for label, frame in frames:
        others = frame[~frame["column"].isin(measures)]
        if len(others):
            st.markdown(f"**{md(label)}**")
            st.dataframe(others, hide_index=True, key=f"{key}_others_{label}")
        st.download_button(f"{md(label)} (CSV)", spreadsheet_safe_csv(frame), download_name(entry.name, label),
                           "text/csv", key=f"{key}_csv_{label}")


def show_head_grid(settings, entry, scorers, corpora: list[str], adapter: str | None = None) -> None:
    """Kind "head_grid": start form, then one stored result as a layer × head heatmap, its largest
    heads, and the remainder (embedding, MLPs) where the diagnostic has one."""
    st.caption(entry.question)
    key = f"heads_{entry.name}"
    stored = kind_results(settings.store_path, entry.kind, entry.name)
    start_form(settings, entry, key, scorers, corpora, expanded=stored.empty, adapter=adapter, min_size=2)
    if stored.empty:
        st.info(f"Nothing stored yet: start it above (or `python cli.py diagnose {entry.name} --corpus NAME`).")
        return
    names = names_by_id(scorers)
    choices = {f"{names.get(r.adapter_id, r.training_set)} · {r.corpus} · {r.n_emails} emails": r
               for r in stored.itertuples()}
    label = st.selectbox("Result", list(choices), key=f"{key}_result")
    result = choices[label]
    values = kind_result(settings.store_path, entry.kind, entry.name, result.adapter_id, result.params)
    st.plotly_chart(head_heatmap(head_grid(values, "value"), f"{entry.title}: {label}", "mean"), key=f"{key}_grid")
    rest = values[(values["layer"] == REMAINDER[0]) & (values["head"] == REMAINDER[1])]
    if len(rest) and np.isfinite(rest["value"].iloc[0]):
        heads_total = float(values[values["layer"] >= 0]["value"].sum())
        st.caption(f"All heads together: {heads_total:+.3f}; everything else (embedding, MLPs): "
                   f"{float(rest['value'].iloc[0]):+.3f} (means over {result.n_emails} emails; the spread per "
                   "head is in the table).")
    st.dataframe(values[values["layer"] >= 0].sort_values("value", key=abs, ascending=False).head(20),
                 hide_index=True, key=f"{key}_top")


def flag_rows(flags: pd.DataFrame) -> pd.DataFrame:
    """Flagged emails as a table: the evidence's plain values as columns (lists stay in the email view)."""
    evidence = pd.DataFrame([{k: v for k, v in (json.loads(e) if isinstance(e, str) else e).items()
                              if not isinstance(v, (list, dict))} for e in flags["evidence"]], index=flags.index)
    columns = ["email_id", "corpus", "subject", "label", "corrected_label", "strength"]
    if (flags["partner_id"] != "").any():
        columns[2:2] = ["partner_id", "partner_corpus"]
    rows = pd.concat([flags[columns], evidence.drop(columns=[c for c in evidence.columns if c in columns])], axis=1)
    for name in ("label", "corrected_label", "given_label"):  # labels by name, as everywhere else
        if name in rows:
            rows[name] = rows[name].map(lambda v: None if pd.isna(v) else LABEL_NAMES[int(v)])
    return rows.dropna(axis=1, how="all")


def show_email_flags(settings, entry, scorers, corpora: list[str], adapter: str | None = None) -> None:
    """Kind "email_flags": a button that runs the audit over the store, the flagged share per corpus
    with its 95% interval, and the flagged emails (or pairs), strongest first, with their evidence."""
    key = f"flags_{entry.name}"
    st.caption(entry.question)
    summary = kind_results(settings.store_path, entry.kind, entry.name)
    if st.button(f"{'Run' if summary.empty else 'Rerun'} {entry.title.lower()} (a job over every email)",
                 key=f"{key}_start"):
        st.success(started_message(start_job(settings, JobRequest("diagnose", (entry.name,)))))
    if summary.empty:
        st.info(f"Nothing stored yet: start it above (or {code(f'python cli.py diagnose {entry.name}')}).")
        return
    st.plotly_chart(share_bars(summary, entry.title), key=f"{key}_bars")
    shown = summary.drop(columns=["params", "run_id"]).dropna(axis=1, how="all")  # no candidates: column left out
    st.dataframe(shown, hide_index=True, key=f"{key}_summary", column_config={
        "estimate": st.column_config.NumberColumn("share", format="percent"),
        "low": st.column_config.NumberColumn("95% CI low", format="percent"),
        "high": st.column_config.NumberColumn("95% CI high", format="percent")})
    corpus = st.selectbox("Flagged emails of", ["every corpus", *summary["corpus"]], key=f"{key}_corpus")
    flags = stored(settings.store_path, Store.flagged_emails, entry.name,
                   None if corpus == "every corpus" else corpus, 200)
    if flags.empty:
        st.caption("None flagged.")
        return
    rows = flag_rows(flags)
    st.dataframe(rows, hide_index=True, key=f"{key}_flags")
    st.download_button("Flagged emails (CSV)", spreadsheet_safe_csv(rows), download_name(entry.name, corpus),
                       "text/csv", key=f"{key}_csv")


def draw_sample_grid(frame, entry, key: str) -> None:
    """An analysis' sample grid: rows × columns, coloured by the entry's measure, and the table."""
    st.plotly_chart(grid_heatmap([("", frame)], entry.measure, entry.title), key=f"{key}_heatmap")
    st.dataframe(frame, hide_index=True, key=f"{key}_table")


def draw_curve(frame, entry, key: str) -> None:
    """An analysis' curves: one line per series with its 95% band."""
    st.plotly_chart(curve_figure(frame, entry.title), key=f"{key}_curve")


# Stored results by kind (a job's), and analyses of stored results by kind (an entry's `compute`).
VIEWS = {"sample_grid": show_sample_grid, "head_grid": show_head_grid, "email_flags": show_email_flags}
ANALYSIS_VIEWS = {"sample_grid": draw_sample_grid, "curve": draw_curve}


def show_registered(settings, entry, scorers, corpora: list[str], adapter: str | None = None) -> None:
    """Draw a registered diagnostic by its kind: a job's stored results with its start form, or an
    analysis of stored results for the scorer(s) picked here."""
    if entry.compute:
        if entry.kind not in ANALYSIS_VIEWS:
            raise ValueError(f"no generic view of an analysis of kind {entry.kind!r} ({entry.name})")
        st.caption(entry.question)
        key = f"analysis_{entry.name}"
        columns = st.columns(entry.scorers)
        ids = [pick_scorer(f"Scorer {'AB'[i]}" if entry.scorers > 1 else "Scorer", scorers, f"{key}_{i}", f"{key}_{i}",
                           default=adapter, kinds=("adapter", "zero-shot", "bag-of-words"), container=columns[i])
               for i in range(entry.scorers)]
        if None in ids:
            st.info("No evaluated scorer yet.")
            return
        frame = analysis(settings.store_path, entry.name, ids)
        if frame.empty:
            st.info("Nothing stored to analyse for this scorer.")
            return
        ANALYSIS_VIEWS[entry.kind](frame, entry, key)
        return
    if entry.kind not in VIEWS:
        raise ValueError(f"no generic view of kind {entry.kind!r} ({entry.name}); its page draws it")
    VIEWS[entry.kind](settings, entry, scorers, corpora, adapter)
