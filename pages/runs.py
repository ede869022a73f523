"""Runs: start jobs in the background, watch their progress, and see every run's history."""

import time

import pandas as pd
import streamlit as st

from data.export import spreadsheet_safe_csv
from data.records import PRECISIONS, JobRequest
from data.store import Store
from diagnostics.runners.background import list_jobs, start_job
from pages._cache import matmul_rates_here, results_or_stop, stored
from pages._page import warn_of_collapsed
from pages._safe import started_message
from pages._scorers import pick_scorer

settings = st.session_state["settings"]
st.title("Runs")
st.caption("Jobs run as `cli.py` processes of their own: they keep running when this tab closes.")

store_exists = settings.store_path.exists()
results = results_or_stop(settings.store_path, "corpora") if store_exists else None
scorers = results_or_stop(settings.store_path, "scorers", settings.model)["scorers"] if store_exists else pd.DataFrame()
training_sets = sorted(results["training_sets"]["name"].unique()) if results is not None else []
corpora = list(results["corpora"]["name"]) if results is not None else []

with st.form("runs_start"):
    kind = st.selectbox("Job", ["evaluate", "train", "explain a test sample",
                                "sweep heads over a test sample", "ingest a folder",
                                "ingest the synthetic demo", "demo"], key="runs_kind")
    data_dir = st.text_input("Folder of corpora (ingest a folder, demo)", value=str(settings.data_dir or ""),
                             key="runs_data")
    training_set = st.selectbox("Training set (train)", training_sets or ["(none yet)"], key="runs_training_set")
    scorer = pick_scorer("Scorer (explain, sweep heads)", scorers, "runs_scorer", "") if len(scorers) else None
    sample = st.number_input("Test emails per corpus (evaluate; 0 = all) / sample to explain or sweep", 0, 100_000, 100,
                             key="runs_sample")
    corpus = st.selectbox("Corpus (explain, sweep heads)", corpora or ["(none yet)"], key="runs_corpus")
    rates = matmul_rates_here(settings.models_dir)
    precision = st.selectbox("Precision (evaluate, train)", PRECISIONS, key="runs_precision",
                             index=PRECISIONS.index(settings.precision) if settings.precision in PRECISIONS else 0,
                             format_func=lambda p: p if p == "fp32" else
                             f"{p} ({rates.against_fp32(p):.2g}× fp32's matmul rate here"
                             f"{': slower' if rates.slower_than_fp32(p) else ''})",
                             help="fp32 is the reference. The factors are this machine's measured matmul rates "
                                  "(doctor shows them); a precision slower than fp32 here is refused for training "
                                  "and warned about for evaluation. bf16 and int8 runs are checked against fp32 in "
                                  "the run's details; see benchmarks/README.md.")
    submitted = st.form_submit_button("Start")

if submitted:
    request = {
        "evaluate": JobRequest("evaluate", sample_size=sample, options=(("precision", precision),)),
        "train": JobRequest("train", (training_set,), options=(("precision", precision),)),
        "explain a test sample": JobRequest("explain", corpus=corpus, scorer=scorer, sample_size=sample or 200),
        "sweep heads over a test sample": JobRequest("heads", corpus=corpus, scorer=scorer,
                                                     sample_size=sample or 200),
        "ingest a folder": JobRequest("ingest", options=(("data", data_dir),)),
        "ingest the synthetic demo": JobRequest("ingest", options=(("synthetic", True),)),
        "demo": JobRequest("demo", options=(("data", data_dir),)),
    }[kind]
    if kind == "ingest a folder" and not data_dir.strip():
        st.error("Give the folder of corpora to ingest.")
    elif kind in ("explain a test sample", "sweep heads over a test sample") and not corpora:
        st.error("No corpus yet: ingest one first.")
    elif kind == "train" and precision == "int8":
        st.error("Training runs in fp32 or bf16; int8 is a scoring precision.")
    elif kind == "train" and rates.slower_than_fp32(precision):
        st.error(f"{rates.slower_than_fp32(precision)}: train in fp32.")
    elif kind == "train" and not training_sets:
        st.error("No training set yet: build one with `python cli.py trainset ...` or run the demo.")
    else:
        if kind == "evaluate" and rates.slower_than_fp32(precision):
            st.warning(f"{rates.slower_than_fp32(precision)}; started as asked, but fp32 would finish sooner.")
        job = start_job(settings, request)
        st.success(started_message(job))


st.subheader("Bring your own detector")
st.caption("An adapter trained elsewhere (a peft LoRA folder: a causal LM read at two label words, or a sequence "
           "classifier with its head), or another detector's scores (CSV or Parquet). Both run as jobs; see the "
           "README's *Bring your own detector* for the files' formats.")
adapter_tab, scores_tab = st.tabs(["Import an adapter", "Import a score file"])
with adapter_tab, st.form("runs_import_adapter"):
    folder = st.text_input("Adapter folder (adapter_config.json + adapter_model.safetensors)", key="runs_import_folder")
    left, right = st.columns(2)
    base = left.text_input("Base model it was trained on", value=settings.model, key="runs_import_base")
    name = right.text_input("Name (default: the folder's)", key="runs_import_name")
    template = st.text_area("Prompt template, {email} where the email goes (empty: from phishlens_import.json)",
                            key="runs_import_template")
    left, right = st.columns(2)
    negative = left.text_input("Label word for legitimate (causal LM; spaces count)", key="runs_import_negative")
    positive = right.text_input("Label word for phishing/spam", key="runs_import_positive")
    import_sample = st.number_input("Test emails per corpus to evaluate it on (0 = all)", 0, 100_000, 100,
                                    key="runs_import_sample")
    import_adapter_clicked = st.form_submit_button("Import and evaluate")
if import_adapter_clicked:
    if not folder.strip() or not base.strip():
        st.error("Give the adapter's folder and its base model.")
    else:
        job = start_job(settings, JobRequest("import-adapter", (folder.strip(),), sample_size=import_sample, options=(
            ("model", base.strip()), ("name", name.strip()), ("prompt-template", template),
            ("negative-word", negative), ("positive-word", positive))))
        st.success(started_message(job))
with scores_tab, st.form("runs_import_scores"):
    score_file = st.text_input("Score file (.csv, .tsv or .parquet)", key="runs_scores_file")
    score_name = st.text_input("Name of the detector", key="runs_scores_name")
    skip = st.checkbox("Import the usable rows when some cannot be used (they are listed on Overview)",
                       key="runs_scores_skip")
    import_scores_clicked = st.form_submit_button("Import scores")
if import_scores_clicked:
    if not score_file.strip() or not score_name.strip():
        st.error("Give the score file and a name for the detector.")
    else:
        job = start_job(settings, JobRequest("import-scores", (score_file.strip(),), options=(
            ("name", score_name.strip()), ("skip-bad-rows", skip))))
        st.success(started_message(job))


@st.fragment(run_every=2)
def show_jobs() -> None:
    jobs = list_jobs(settings)
    if not jobs:
        st.caption("No job started from the dashboard yet.")
        return
    st.dataframe(pd.DataFrame([{
        "job": j.id, "command": j.command, "status": j.status, "exit code": j.returncode,
        "seconds": round(time.time() - j.started) if j.status == "running" else None,
        "progress": j.last_line,
    } for j in jobs]), hide_index=True, key="runs_jobs")


st.subheader("Jobs started here")
show_jobs()

st.subheader("Run history")
if results is None:
    st.caption("No store yet.")
else:
    overview = results_or_stop(settings.store_path, "overview")
    warn_of_collapsed(overview["collapsed"])
    runs = overview["runs"]
    st.dataframe(runs, hide_index=True, key="runs_history")
    st.download_button("Download run history (CSV)", spreadsheet_safe_csv(runs), "phishlens-runs.csv", "text/csv",
                       key="runs_download")
    if not runs.empty:
        chosen = st.selectbox("Run details", runs["id"], key="runs_detail",
                              help="What the run was asked to do, and what it recorded while running: an evaluation "
                                   "in bf16 or int8 records how far that precision moved scores against fp32.")
        st.json(stored(settings.store_path, Store.run_params, chosen), expanded=2)
