"""Study: a cross-architecture study spec (studies/*.toml) against the store — the F1 matrix per
model (mean ± std over LoRA seeds, bootstrap intervals), in- vs out-of-domain per paradigm, the
findings in plain words, and the whole report as one self-contained HTML file."""

import streamlit as st

from data.export import download_name, spreadsheet_safe_csv
from data.records import JobRequest
from data.store import StoreError
from diagnostics.runners.background import start_job
from diagnostics.analyses.paired import power_note
from diagnostics.analyses.study import SpecError
from diagnostics.analyses.study_report import spec_fields, study_figures, study_html
from data.schema import LABEL_VIEW_TITLES
from pages._cache import study_report
from pages._page import pick_label_view
from pages._safe import md, started_message

settings = st.session_state["settings"]
st.title("Study")
st.caption("Specialist vs generalist (and FTICL: fine-tuning with in-context examples) across architectures, as one "
           "reproducible spec: `python cli.py study "
           "studies/<name>.toml` trains and evaluates whatever the store lacks. This page reports what is stored.")

specs = {p.stem: p for p in sorted(settings.studies_dir.glob("*.toml"))}
if not specs:
    st.info(f"No study spec (\\*.toml) in {md(settings.studies_dir)}.")
    st.stop()
names = list(specs)
wanted = st.query_params.get("spec")
name = st.selectbox("Study spec", names, index=names.index(wanted) if wanted in names else 0, key="study_spec")
st.query_params["spec"] = name
view = pick_label_view("study_labels")
try:
    spec, plan, results, summary, findings, to_do, power = study_report(settings.store_path, specs[name], settings.seed,
                                                                        view)
except (SpecError, StoreError) as exc:
    st.error(md(exc, 2000))
    st.stop()

with st.expander("Spec"):
    st.json(spec_fields(spec))
    target = st.number_input("Wanted 95% half-width of F1 per cell", 0.01, 0.3, 0.04, step=0.01, key="study_target")
    st.text(power_note(spec.eval_size, target))  # the test size needed for it, from the bootstrap
    st.caption("Per test corpus, with its own test split's size and share of phishing (F1 ≈ 0.85):")
    st.dataframe(power.assign(enough=power["f1_half_width"] <= target) if len(power) else power, hide_index=True,
                 key="study_power")
    st.caption(f"{len(plan.adapters)} adapters ({len(spec.models)} models × {len(plan.training_sets)} training sets "
               f"× {len(spec.seeds)} seeds) on {len(plan.test_corpora)} test corpora.")
    st.text(to_do)  # what `study` would still train and score, with the time this store's rates give
    if st.button("Run what is missing (as a job)", key="study_start"):
        job = start_job(settings, JobRequest("study", (str(specs[name]),)))
        st.success(started_message(job))

if results.empty:
    st.info(f"Nothing of this study is stored yet: run {md(f'python cli.py study studies/{name}.toml')} "
            "(or the button under Spec).")
    st.stop()

trained = set(results["adapter_id"])
missing = [a for _, _, _, a in plan.adapters if a not in trained]
if missing:
    st.warning(f"{len(missing)} of the study's {len(plan.adapters)} adapters have no predictions yet; "
               "the figures show what is stored.")
collapsed = results.loc[results["collapsed"]].drop_duplicates("adapter_id")
if len(collapsed):
    st.warning(f"**{len(collapsed)} of the study's adapters collapsed** to one verdict for nearly every test email, "
               "so their cells measure the label mix, not the detector, and they pull the means below down: "
               + ", ".join(md(f"{r.model} {r.training_set} (seed {int(r.seed)})", 200) for r in collapsed.itertuples())
               + ". Retrain them with a lower learning rate (a `[lora.<model>]` table in the spec).")

st.subheader("Findings")
if view != "original":
    st.caption(f"Every figure below is computed {LABEL_VIEW_TITLES[view]} (the Labels switch above).")
for line in findings:
    st.text("• " + line)
figures = study_figures(results, summary)
for i, figure in enumerate(figures):
    st.plotly_chart(figure, key=f"study_figure_{i}")
st.subheader("Summary")
st.dataframe(summary, hide_index=True, key="study_summary")
report = study_html(spec, summary, findings, figures, LABEL_VIEW_TITLES[view])
st.download_button("Report (self-contained HTML)", report,
                   download_name("phishlens-study", name, suffix=".html"), "text/html", key="study_html")
st.download_button("All runs (CSV)", spreadsheet_safe_csv(results), download_name("phishlens-study", name), "text/csv",
                   key="study_csv")
