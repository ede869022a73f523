"""Overview: the in-domain vs out-of-domain F1 matrix, the generalization gap, and runs."""

import pandas as pd
import streamlit as st

from diagnostics.analyses.calibration import RETUNE_FRACTIONS
from diagnostics.analyses.architectures import (architecture_summary, architectures, comparison_rows, seed_pairs,
                                       shared_training_sets)
from diagnostics.analyses.paired import difference_sentence
from diagnostics.contracts.registry import for_page
from data.scorers import SCORES as SCORES_MODEL
from models.bag_of_words import REFERENCE_MODEL
from pages import _charts
from diagnostics.analyses.matrix import cell_moves
from data.store import Store
from pages._cache import stored, matrix_view, paired_comparisons, results_or_stop, source_threshold, threshold_and_calibration
from pages._kinds import show_registered
from data.schema import LABEL_VIEW_TITLES
from pages._page import pick_label_view, warn_of_collapsed
from pages._safe import md



def show_architectures(metrics: pd.DataFrame, scorers: pd.DataFrame) -> None:
    """Every base model at once (architecture × paradigm × scope, spread over seeds and specialists),
    and two architectures' adapters of one training set compared on the same emails, seed with seed."""
    models = architectures(scorers)
    summary = architecture_summary(metrics, scorers)
    if len(models) < 2 and summary["seeds"].max() < 2:
        return
    st.subheader("Architectures side by side")
    st.caption("Mean F1 of each base model's adapters per paradigm, in domain, out of domain and on held-out "
               "corpora; the bar is ± one standard deviation across its adapters (seeds, and the specialists of "
               "one paradigm). n under each bar: adapters (seeds).")
    st.plotly_chart(_charts.architecture_bars(summary), key="overview_architectures")
    st.dataframe(summary, hide_index=True, key="overview_architecture_table",
                 column_config={"mean_f1": st.column_config.NumberColumn("mean F1", format="%.3f"),
                                "sd_f1": st.column_config.NumberColumn("sd across adapters", format="%.3f")})
    if len(models) < 2:
        return
    left, middle, right = st.columns(3)
    model_a = pick_from(left, "Architecture A", models, "arch_a", 0)
    model_b = pick_from(middle, "Architecture B", [m for m in models if m != model_a], "arch_b", 0)
    shared = shared_training_sets(scorers, model_a, model_b)
    if not shared:
        st.caption(f"{md(model_a)} and {md(model_b)} share no training set: train both on one to compare them.")
        return
    training_set = pick_from(right, "Training set", shared, "arch_set", 0)
    names = dict(zip(scorers["id"], scorers["long_name"]))
    rows, sentences = [], []
    for first, second in seed_pairs(scorers, model_a, model_b, training_set):
        compared = paired_comparisons(settings.store_path, first, second)
        rows += comparison_rows(names[first], names[second], compared)
        sentences += [difference_sentence(names[first], names[second], c, r) for c, r in compared.items()]
    if not rows:
        st.caption("Their adapters share no scored test email.")
        return
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="overview_architecture_pairs", column_config={
        name: st.column_config.NumberColumn(format="%.3f")
        for name in ("F1 A", "F1 B", "ΔF1 (A − B)", "95% CI low", "95% CI high", "McNemar p")})
    for sentence in sentences:
        st.text(sentence)  # names come from files: shown as text


def pick_from(container, label: str, options: list[str], param: str, default: int) -> str:
    """A selectbox whose pick lives in the URL (?param=…)."""
    wanted = st.query_params.get(param)
    picked = container.selectbox(label, options, index=options.index(wanted) if wanted in options else default,
                                 key=f"overview_{param}")
    st.query_params[param] = picked
    return picked


settings = st.session_state["settings"]
st.title("Overview: does the detector generalize?")

results = results_or_stop(settings.store_path, "overview", settings.model)
warn_of_collapsed(results["collapsed"])

metrics = results["metrics"]
if metrics.empty:
    st.info("The store has no predictions yet. Build results with `python cli.py demo` (synthetic demo) "
            "or `python cli.py demo --data ../shared/data` (real corpora), then reload this page.")
    st.stop()

corpora = results["corpora"]
if corpora["synthetic"].any():
    st.warning("**Synthetic data.** Corpora marked *synthetic* were generated from templates for the offline demo; "
               "their figures say nothing about real phishing.")

# The bag-of-words reference and imported score files are rows of every model's matrix, not models of their own.
BESIDE_EVERY_MODEL = (REFERENCE_MODEL, SCORES_MODEL)


def beside_every_model(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows every model's matrix shows beside its own: the bag of words (named so) and score files."""
    reference = frame[frame["model"] == REFERENCE_MODEL]
    return pd.concat([reference.assign(training_set="bag of words · " + reference["training_set"]),
                      frame[frame["model"] == SCORES_MODEL]])


models = sorted(set(metrics["model"]) - set(BESIDE_EVERY_MODEL)) or [REFERENCE_MODEL]
wanted = st.query_params.get("model")
model = st.selectbox("Base model", models, index=models.index(wanted) if wanted in models else 0,
                     key="overview_model") if len(models) > 1 else models[0]
st.query_params["model"] = model  # a link to this page reopens the same model's matrix

# Is it the model or the label? The same matrix over corrected labels, without the label audit's
# suspects, or without each scorer's test emails that near-duplicate its own training emails.
view = pick_label_view("overview_labels")
viewed = metrics if view == "original" else matrix_view(settings.store_path, view)
shown = (pd.concat([viewed[viewed["model"] == model], beside_every_model(viewed)]) if model != REFERENCE_MODEL
         else beside_every_model(viewed))

st.subheader(f"F1 matrix — {md(model)}")
st.caption("Rows: training set (zero-shot = base model without adapter; *bag of words* = TF-IDF + logistic "
           "regression trained on the same set and scored on the same test emails, the reference to beat). "
           "Columns: test corpus and what its positive label means. ◆ and a frame mark in-domain cells; "
           "corpora marked *held out* (ingested with `--eval-only`) come last, after a dotted rule: no adapter "
           "was trained on them. Rows marked *scores only* were imported from a score file (`cli.py import-scores`): "
           "a detector PhishLens does not run, so nothing explains them.")
st.plotly_chart(_charts.f1_heatmap(shown, corpora), key="overview_matrix")
if view != "original":
    moves = cell_moves(metrics[metrics["adapter_id"].isin(shown["adapter_id"])], shown)
    changed = moves[(moves["emails_left_out"] > 0) | (moves["positives_moved"] != 0)]
    if changed.empty:
        st.info(f"No cell changes {LABEL_VIEW_TITLES[view]}: " + {
            "corrected": "no scored test email has a corrected label (record one in the Inbox).",
            "without suspects": "no scored test email is a suspected label error (or the label audit has not run: "
                                "Corpora page).",
            "without near-duplicates": "no scored test email near-duplicates its scorer's training emails (or the "
                                       "near-duplicate audit has not run: Corpora page)."}[view])
    else:
        st.caption(f"How much each cell moves {LABEL_VIEW_TITLES[view]}: test emails left out, positives "
                   "relabelled, F1 as the corpora label them and in this view (the cells' 95% intervals are in "
                   "*All figures*).")
        st.dataframe(changed, hide_index=True, key="overview_label_moves", column_config={
            "share_left_out": st.column_config.NumberColumn("share left out", format="percent"),
            **{name: st.column_config.NumberColumn(format="%.3f") for name in ("f1", "f1_view", "delta_f1")}})

imported = stored(settings.store_path, Store.imported_scorers)
if not imported.empty:
    problems = stored(settings.store_path, Store.score_import_problems)
    counts = problems.groupby(["scorer_id", "skipped"]).size().unstack(fill_value=0)
    files = imported.assign(
        rows_not_matched=imported["id"].map(counts.get(True, pd.Series(dtype=int))).fillna(0).astype(int),
        rows_outside_test_splits=imported["id"].map(counts.get(False, pd.Series(dtype=int))).fillna(0).astype(int))
    with st.expander(f"Imported score files ({len(imported)}): what each row of the file became", expanded=False):
        st.dataframe(files[["name", "source", "score_column", "threshold", "n_rows", "rows_not_matched",
                            "rows_outside_test_splits"]], hide_index=True, key="overview_imported_files",
                     column_config={"n_rows": "rows in the matrix"})
        if problems.empty:
            st.caption("Every row of every file matched a test email.")
        else:
            st.caption("Rows not used: *skipped* rows could not be matched or read (the import was told to skip "
                       "them); the others name emails in no test split, so no matrix cell holds them.")
            st.dataframe(problems.assign(scorer_id=problems["scorer_id"].map(dict(zip(imported["id"], imported["name"])))),
                         hide_index=True, key="overview_import_problems", column_config={"scorer_id": "file"})

one_class = sorted(shown.loc[~shown["both_classes"], "corpus"].unique())
if one_class:
    st.info(f"F1 is not shown for {md(', '.join(one_class))}: its test sample holds one class only "
            f"(e.g. Nazario is all phishing), so precision and F1 cannot measure false alarms there. "
            f"The cell shows recall (R) instead.")

st.subheader("Generalization gap")
gap = results["gap"]
reference_gap = gap[gap["model"] == REFERENCE_MODEL]
gap = pd.concat([gap[gap["model"] == model],
                 reference_gap.assign(training_set="bag of words · " + reference_gap["training_set"])])
if gap.empty:
    st.caption("No fine-tuned adapter has been evaluated yet.")
else:
    st.plotly_chart(_charts.gap_bars(gap), key="overview_gap")
    if gap["out_of_domain_f1"].isna().any():
        st.caption("An adapter trained on every corpus (a generalist over all of them) has no out-of-domain "
                   "cell, so no gap.")
    st.dataframe(gap.drop(columns=["model"]), hide_index=True, key="overview_gap_table")

# Every evaluated scorer once, by its long name (data.scorers: training set, seed where needed, model).
scorers = results["scorers"]
evaluated = scorers[scorers["id"].isin(set(metrics["adapter_id"]))]
scorer_names = dict(zip(evaluated["long_name"], evaluated["id"]))
show_architectures(metrics, scorers)

st.subheader("Is a difference real?")
st.caption("Two scorers compared on the test emails both scored: the paired-bootstrap 95% interval of their F1 "
           "difference (the emails resampled together) and McNemar's exact test on which emails each got right. A "
           "difference is claimed only where the interval excludes 0 and p < 0.05.")
if len(scorer_names) >= 2:
    names = list(scorer_names)
    left, right = st.columns(2)
    first = pick_from(left, "Scorer A", names, "pair_a", 0)
    second = pick_from(right, "Scorer B", [n for n in names if n != first], "pair_b", 0)
    compared = paired_comparisons(settings.store_path, scorer_names[first], scorer_names[second])
    if not compared:
        st.caption("These two scorers share no test emails.")
    else:
        st.dataframe(pd.DataFrame(comparison_rows(first, second, compared)).drop(columns=["A", "B"]),
                     hide_index=True, key="overview_pairs", column_config={
                         name: st.column_config.NumberColumn(format="%.3f")
                         for name in ("F1 A", "F1 B", "ΔF1 (A − B)", "95% CI low", "95% CI high", "McNemar p")})
        for corpus, c in compared.items():
            st.text(difference_sentence(first, second, corpus, c))  # names come from files: shown as text

st.subheader("Is it the threshold?")
st.caption("Per corpus, from the scores already stored: calibration (reliability, expected calibration error), F1 "
           "at the product's threshold (score 0), at the best threshold for that corpus (the oracle: an upper bound "
           "on what a threshold can recover), and after re-tuning it on k % of the corpus' labelled test emails, "
           "scored on the rest (mean and 95% range over 200 seeded splits).")
if scorer_names:
    names = list(scorer_names)
    picked_scorer = pick_from(st, "Scorer", names, "threshold_scorer", 0)
    transfer, curves = threshold_and_calibration(settings.store_path, scorer_names[picked_scorer])
    left, right = st.columns(2)
    left.plotly_chart(_charts.reliability_figure(curves), key="overview_reliability")
    right.plotly_chart(_charts.retune_figure(transfer, RETUNE_FRACTIONS), key="overview_retune")
    source = source_threshold(settings.store_path, scorer_names[picked_scorer])
    if source is not None:
        threshold, by_corpus = source
        transfer = transfer.merge(by_corpus, on="corpus", how="left")
    table = transfer[["corpus", "n", "ece", "f1_at_0", *(["source_f1"] if source is not None else []),
                      "oracle_threshold", "oracle_f1", *(f"retuned_{f:g}" for f in RETUNE_FRACTIONS)]]
    st.dataframe(table, hide_index=True, key="overview_threshold_table", column_config={
        "ece": st.column_config.NumberColumn("ECE", format="%.3f"),
        "f1_at_0": st.column_config.NumberColumn("F1 at 0", format="%.3f"),
        "source_f1": st.column_config.NumberColumn("F1 at source threshold", format="%.3f"),
        "oracle_threshold": st.column_config.NumberColumn("oracle threshold", format="%+.2f"),
        "oracle_f1": st.column_config.NumberColumn("oracle F1", format="%.3f"),
        **{f"retuned_{f:g}": st.column_config.NumberColumn(f"re-tuned on {100 * f:g} %", format="%.3f")
           for f in RETUNE_FRACTIONS}})
    if source is None:
        st.caption("No threshold tuned at the source for this scorer: `python cli.py diagnose source-threshold "
                   "--scorer ID` tunes one on its training corpora's validation emails (no target labels).")
    else:
        st.caption(f"Source threshold {threshold:+.2f}: the F1-best cut on the training corpora's training-split "
                   "emails the adapter never trained on, applied unchanged to every test corpus (95% intervals in "
                   "the sentences below).")
    for row in transfer.dropna(subset=["f1_at_0", "oracle_f1"]).to_dict("records"):
        at_source = (f"; at the threshold tuned at the source {row['source_f1']:.2f} [{row['source_f1_low']:.2f}, "
                     f"{row['source_f1_high']:.2f}]" if source is not None and not pd.isna(row.get("source_f1"))
                     else "")
        st.text(f"{row['corpus']}: a threshold could lift F1 from {row['f1_at_0']:.2f} to at most "
                f"{row['oracle_f1']:.2f} (oracle, n = {row['n']}){at_source}; re-tuned on 10 % of its labelled "
                f"emails it reaches {row['retuned_0.1']:.2f} [{row['retuned_0.1_low']:.2f}, "
                f"{row['retuned_0.1_high']:.2f}].")

# Registered diagnostics of this page that it does not draw itself above: drawn by their kind.
DRAWN_ABOVE = {"evaluate", "calibration", "paired-comparison", "source-threshold"}
for entry in [d for d in for_page("overview") if d.name not in DRAWN_ABOVE]:
    st.subheader(entry.title)
    show_registered(settings, entry, evaluated, list(corpora["name"]))

st.subheader("All figures")
st.dataframe(
    shown[["training_set", "corpus", "in_domain", "n", "tp", "fp", "fn", "tn", "precision", "recall", "f1", "f1_low",
           "f1_high", "accuracy"]],
    hide_index=True, key="overview_metrics_table",
    column_config={"f1_low": st.column_config.NumberColumn("F1 95% CI low", format="%.3f"),
                   "f1_high": st.column_config.NumberColumn("F1 95% CI high", format="%.3f")},
)
st.caption("F1 intervals: 95% percentile bootstrap over the evaluated emails (2,000 resamples of the confusion "
           "counts). With a few dozen test emails per corpus they are wide: read differences inside them as noise.")

with st.expander("Training loss"):
    adapters = results["adapters"]
    if len(adapters):
        st.plotly_chart(_charts.loss_curves(adapters), key="overview_loss")

st.subheader("Runs")
st.dataframe(results["runs"], hide_index=True, key="overview_runs")
