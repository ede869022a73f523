"""Heads: inside the classifier. Which attention heads read the phishing cues, which heads an
adapter depends on per corpus, at which layer the decision forms, and what fine-tuning changed.

Built on TransformerLens' TransformerBridge (diagnostics.analyses.heads). Sweeps over a corpus run as
jobs (`cli.py heads`) and are cached in the store; one email's patterns are computed here.
"""

import streamlit as st

from data.export import spreadsheet_safe_csv
from data.records import JobRequest
from data.scorers import names_by_id
from data.store import Store
from diagnostics.analyses.heads import ABLATIONS
from diagnostics.analyses.lora_heads import update_effect_correlation
from diagnostics.analyses.per_head import head_grid
from diagnostics.contracts.registry import for_page
from diagnostics.runners.background import start_job
from pages._cache import attention_view, head_sweeps_and_lens, lora_norms, results_or_stop, stored
from pages._charts import attention_to_tokens, head_heatmap, logit_lens_figure, pattern_heatmap, update_vs_effect
from pages._explain_view import pick_email
from pages._kinds import show_registered
from pages._page import warn_of_collapsed
from pages._safe import int_param, md, started_message, tab_param
from pages._scorers import choices as choices_of
from pages._scorers import pick_scorer, record, show_readout_note

settings = st.session_state["settings"]
st.title("Heads")
st.caption("Inside the classifier: attention patterns, each head's effect when ablated, the score read off "
           "every layer (logit lens), and how much an adapter changed each head. Scores are logit phishing − "
           "logit legitimate at the answer position, as everywhere in PhishLens.")

results = results_or_stop(settings.store_path, "scorers", settings.model)
warn_of_collapsed(results["collapsed"])
scorers = results["scorers"]
names = names_by_id(scorers)  # every scorer id → its one display name (data.scorers)
query = st.query_params
sweeps, stored_lens = head_sweeps_and_lens(settings.store_path)


def adapter_path(scorer_id: str) -> str | None:
    return record(scorers, scorer_id)["path"] if is_adapter(scorer_id) else None


def model_of(scorer_id: str) -> str:
    return record(scorers, scorer_id)["model"]


def is_adapter(scorer_id: str) -> bool:
    return record(scorers, scorer_id)["kind"] == "adapter"


def named(frame):
    """A stored result frame with each row's scorer display name (its training set where the scorer is gone)."""
    return frame.assign(scorer=[names.get(i, t) for i, t in zip(frame["adapter_id"], frame["training_set"])]) \
        if len(frame) else frame.assign(scorer=[])


first_adapter = next(iter(scorers.loc[scorers["kind"] == "adapter", "id"]), None)
adapter = pick_scorer("Adapter", scorers, "heads_adapter", "adapter", default=first_adapter)
show_readout_note(record(scorers, adapter))
# Registered per-head diagnostics (diagnostics/contracts/registry.py), each in a tab of its own; the head
# sweep has the "Head effects" tab, with its exact-ablation checks.
per_head = [d for d in for_page("heads", kind="head_grid") if d.name != "head-sweep"]
tab_names = ["Attention", "Head effects", "Logit lens", "Adapter vs base", *(d.title for d in per_head)]
attention_tab, effects_tab, lens_tab, update_tab, *per_head_tabs = st.tabs(tab_names, default=tab_param(tab_names))

# ---------------------------------------------------------------- one email
with attention_tab:
    mail, _ = pick_email(settings, "heads", adapter if is_adapter(adapter) else None)
    view = attention_view(model_of(adapter), adapter_path(adapter), settings, mail)
    layers, heads = view.patterns.shape[:2]
    st.metric("Score", f"{view.score:+.3f}", help="> 0: phishing/spam verdict")
    st.plotly_chart(head_heatmap(view.email_share(), "Share of the answer position's attention on the email's "
                                 "tokens (vs instruction and question)", "share", diverging=False),
                    key="heads_share")
    left, right = st.columns(2)
    layer = left.slider("Layer", 0, layers - 1, int_param("layer", layers - 1, 0, layers - 1),
                        key="heads_layer")
    head = right.slider("Head", 0, heads - 1, int_param("head", 0, 0, heads - 1), key="heads_head")
    st.query_params.update({"layer": str(layer), "head": str(head)})
    st.plotly_chart(attention_to_tokens(view.from_last_position()[layer], view.tokens, layer),
                    key="heads_to_tokens")
    top, pattern = st.columns([2, 3])
    with top:
        st.markdown(f"**Top attended tokens, layer {layer}**")
        st.dataframe(view.top_attended(layer, k=5), hide_index=True, key="heads_top", height=360,
                     column_config={"weight": st.column_config.NumberColumn(format="%.3f")})
    with pattern:
        st.plotly_chart(pattern_heatmap(view.pattern(layer, head), view.tokens, layer, head),
                        key="heads_pattern")

# ---------------------------------------------------------------- sweeps
with effects_tab:
    with st.expander("Sweep every head over a corpus sample (runs as a job)", expanded=sweeps.empty):
        with st.form("heads_start"):
            cols = st.columns(5)
            job_scorer = pick_scorer("Adapter", scorers, "heads_job_set", "", default=adapter, container=cols[0])
            job_corpus = cols[1].selectbox("Corpus", list(results["corpora"]["name"]), key="heads_job_corpus")
            job_size = cols[2].number_input("Sample size", 4, 5000, 200, step=10, key="heads_job_size")
            job_ablation = cols[3].selectbox("Ablation", ABLATIONS, key="heads_job_ablation",
                                             help="mean: replace the head's output by its average; zero: by 0")
            job_top = cols[4].number_input("Exact check of top", 0, 100, 10, key="heads_job_top")
            if st.form_submit_button("Start"):
                job = start_job(settings, JobRequest("heads", corpus=job_corpus, scorer=job_scorer,
                                                     sample_size=job_size,
                                                     options=(("ablation", job_ablation), ("top-k", job_top))))
                st.success(started_message(job))
    if sweeps.empty:
        st.info("No head sweep stored yet: start one above (or `python cli.py heads --corpus NAME`).")
    else:
        st.caption("Attribution patching estimates every head's effect from one forward and one backward pass "
                   "per batch; the top heads (●) are then ablated exactly and show the exact value.")
        choices = {f"{r.scorer} · {r.corpus} · {r.ablation} · {r.n_emails} emails": r
                   for r in named(sweeps).itertuples()}
        labels = list(choices)
        picked = st.multiselect("Sweeps (two: side by side and their difference)", labels,
                                default=[c for c in query.get_all("sweeps") if c in choices] or labels[:1],
                                max_selections=2, key="heads_sweeps")
        st.query_params["sweeps"] = picked
        measure = st.radio("Effect on", ["delta_logit", "delta_f1"], horizontal=True, key="heads_measure",
                           format_func={"delta_logit": "mean score", "delta_f1": "F1"}.get)
        grids = []
        for column, label in zip(st.columns(max(len(picked), 1)), picked):
            sweep = choices[label]
            effects = stored(settings.store_path, Store.head_effects, sweep.adapter_id, sweep.params)
            values = head_grid(effects, measure)
            grids.append(values)
            with column:
                st.plotly_chart(head_heatmap(values, label, "Δ", checked=head_grid(effects.assign(
                    checked=effects["exact_delta_logit"].notna()), "checked") > 0), key=f"heads_effects_{label}")
                checked = effects[effects["exact_delta_logit"].notna()]
                st.dataframe(checked[["layer", "head", "estimated_delta_logit", "exact_delta_logit",
                                      "estimated_delta_f1", "exact_delta_f1"]], hide_index=True,
                             key=f"heads_checked_{label}")
                st.download_button("Head effects (CSV)", spreadsheet_safe_csv(effects), "head-effects.csv",
                                   "text/csv", key=f"heads_csv_{label}")
        if len(grids) == 2 and grids[0].shape == grids[1].shape:
            st.plotly_chart(head_heatmap(grids[0] - grids[1], f"Difference: {picked[0]} minus {picked[1]}", "Δ−Δ"),
                            key="heads_difference")
        elif len(grids) == 2:
            st.info("These two sweeps are of different architectures; no head-by-head difference.")

# ---------------------------------------------------------------- logit lens
with lens_tab:
    curves = [(f"{names[adapter]} · this email", view.lens, None)]
    others = st.multiselect("Also this email under", [i for i in choices_of(scorers)["id"] if i != adapter],
                            format_func=names.get, key="heads_lens_others")
    for other in others:
        curves.append((f"{names[other]} · this email",
                       attention_view(model_of(other), adapter_path(other), settings, mail).lens, None))
    if not stored_lens.empty:
        stored_lens = named(stored_lens)
        stored_lens = stored_lens.assign(curve=stored_lens["scorer"] + " · " + stored_lens["corpus"]
                                         + " · mean of " + stored_lens["n_emails"].astype(str))
        averages = st.multiselect("Dataset averages (from head sweeps)", list(dict.fromkeys(stored_lens["curve"])),
                                  key="heads_lens_averages")
        for name in averages:
            rows = stored_lens[stored_lens["curve"] == name].sort_values("layer")
            curves.append((name, rows["mean_score"].to_numpy(), rows["std_score"].to_numpy()))
    st.plotly_chart(logit_lens_figure(curves), key="heads_lens")

# ---------------------------------------------------------------- adapter vs base
with update_tab:
    if not is_adapter(adapter):
        st.info("The zero-shot base model has no adapter; pick a trained one above.")
    else:
        norms = lora_norms(adapter_path(adapter), model_of(adapter), str(settings.models_dir))
        if norms.empty:
            st.info("This adapter does not touch the attention projections (q, k, v, o).")
        else:
            left, right = st.columns(2)
            with left:
                st.plotly_chart(head_heatmap(head_grid(norms, "total"), "‖LoRA update‖ per head (q, k, v, o)", "norm",
                                             diverging=False), key="heads_norms")
            with right:
                own = sweeps[sweeps["adapter_id"] == adapter] if not sweeps.empty else sweeps
                if own.empty:
                    st.info("Sweep this adapter's heads (Head effects tab) to compare update size with effect.")
                else:
                    sweep = own.iloc[0]
                    effects = stored(settings.store_path, Store.head_effects, sweep["adapter_id"], sweep["params"])
                    joined, rho = update_effect_correlation(norms, effects)
                    st.plotly_chart(update_vs_effect(joined), key="heads_update_vs_effect")
                    st.caption(f"Effects from the {md(sweep['corpus'])} sweep ({sweep['ablation']} ablation, "
                               f"{sweep['n_emails']} emails). Spearman ρ = {rho:.2f}")

# ---------------------------------------------------------------- registered per-head diagnostics
for entry, tab in zip(per_head, per_head_tabs):
    with tab:
        show_registered(settings, entry, scorers, list(results["corpora"]["name"]), adapter)
