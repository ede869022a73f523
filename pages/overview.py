"""Overview: the in-domain vs out-of-domain F1 matrix, the generalization gap, and runs."""

import streamlit as st

from pages import _charts
from pages._cache import results_or_stop

settings = st.session_state["settings"]
st.title("Overview: does the detector generalize?")

results = results_or_stop(settings.store_path, "overview")

metrics = results["metrics"]
if metrics.empty:
    st.info("The store has no predictions yet. Build results with `python cli.py demo` (synthetic demo) "
            "or `python cli.py demo --data ../shared/data` (real corpora), then reload this page.")
    st.stop()

corpora = results["corpora"]
if corpora["synthetic"].any():
    st.warning("**Synthetic data.** Corpora marked *synthetic* were generated from templates for the offline demo; "
               "their figures say nothing about real phishing.")

models = sorted(metrics["model"].unique())
wanted = st.query_params.get("model")
model = st.selectbox("Base model", models, index=models.index(wanted) if wanted in models else 0,
                     key="overview_model") if len(models) > 1 else models[0]
st.query_params["model"] = model  # a link to this page reopens the same model's matrix
shown = metrics[metrics["model"] == model]

st.subheader(f"F1 matrix — {model}")
st.caption("Rows: training set (zero-shot = base model without adapter). Columns: test corpus and what its "
           "positive label means. ◆ and a frame mark in-domain cells.")
st.plotly_chart(_charts.f1_heatmap(shown, corpora), key="overview_matrix")

one_class = sorted(shown.loc[~shown["both_classes"], "corpus"].unique())
if one_class:
    st.info(f"F1 is not shown for {', '.join(one_class)}: its test sample holds one class only "
            f"(e.g. Nazario is all phishing), so precision and F1 cannot measure false alarms there. "
            f"The cell shows recall (R) instead.")

st.subheader("Generalization gap")
gap = results["gap"]
gap = gap[gap["model"] == model]
if gap.empty:
    st.caption("No fine-tuned adapter has been evaluated yet.")
else:
    st.plotly_chart(_charts.gap_bars(gap), key="overview_gap")
    if gap["out_of_domain_f1"].isna().any():
        st.caption("An adapter trained on every corpus (a generalist over all of them) has no out-of-domain "
                   "cell, so no gap.")
    st.dataframe(gap.drop(columns=["model"]), hide_index=True, key="overview_gap_table")

st.subheader("All figures")
st.dataframe(
    shown[["training_set", "corpus", "in_domain", "n", "tp", "fp", "fn", "tn", "precision", "recall", "f1", "accuracy"]],
    hide_index=True, key="overview_metrics_table",
)

with st.expander("Training loss"):
    adapters = results["adapters"]
    if len(adapters):
        st.plotly_chart(_charts.loss_curves(adapters), key="overview_loss")

st.subheader("Runs")
st.dataframe(results["runs"], hide_index=True, key="overview_runs")
