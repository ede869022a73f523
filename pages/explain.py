"""Explain: which words, fields and links pushed each adapter towards phishing or legitimate.

SHAP maps come progressively (fields, then sentences, then words) and are cached in the
store, so reopening an explained email is instant. Email text is shown escaped only.
"""

import pandas as pd
import streamlit as st

from data.corpora import USER_CORPUS
from data.parse import ParseError, make_email, parse_pasted_text
from diagnostics.attribution import (CoalitionScorer, adapter_disabled, explain_gradient, explain_progressively,
                                     field_totals, layout_email, lora_delta, method_params, with_faithfulness_curves)
from models.scoring import PromptBuilder
from pages._cache import (classifier, email_with_verdicts, misclassified_examples, model_lock, results_or_stop,
                          save_explanation, stored_explanation)
from pages._charts import faithfulness_figure, field_waterfall
from pages._token_map import legend_html, token_map_html

METHOD_NAMES = {"shap": "SHAP (fields → sentences → words)", "gradxinput": "Gradient × input (fast, not additive)"}
LEVEL_NOTE = {"field": "fields (first pass)", "sentence": "sentences (refining…)", "word": "words"}

settings = st.session_state["settings"]
st.title("Explain an email")
st.caption("Red pushed the adapter towards phishing/spam, blue towards legitimate. Values are in score units "
           "(logit phishing − logit legitimate); SHAP values add up to the score.")

results = results_or_stop(settings.store_path, "overview")
adapters = results["adapters"]
by_name = {"zero-shot": None, **{r["training_set"]: r for r in adapters.to_dict("records")}}
query = st.query_params

left, right = st.columns([2, 1])
with right:
    wanted = [a for a in query.get_all("adapters") if a in by_name]
    default = wanted or ([next(iter(adapters["training_set"]))] if len(adapters) else ["zero-shot"])
    picked = st.multiselect("Adapters", list(by_name), default=default, key="explain_adapters")
    method = st.radio("Method", list(METHOD_NAMES), format_func=METHOD_NAMES.get, key="explain_method",
                      index=list(METHOD_NAMES).index(query.get("method", "shap")) if query.get("method") in METHOD_NAMES else 0)
    show_delta = st.toggle("LoRA delta (adapter minus base model)", value=query.get("delta") == "1",
                           key="explain_delta")
with left:
    source = st.radio("Email", ["from the store", "paste"], horizontal=True, key="explain_source",
                      index=1 if query.get("source") == "paste" else 0)
    mail = None
    if source == "from the store":
        first = by_name.get(picked[0]) if picked else None
        examples = misclassified_examples(settings.store_path, first["id"] if first else None)
        labels = {r["id"]: f"{r['subject'][:70] or '(no subject)'} · {r['corpus']}"
                  for r in examples.to_dict("records")}
        options = list(labels)
        if query.get("email") and query.get("email") not in labels:
            options.insert(0, query.get("email"))
        if not options:
            st.info("No emails in the store yet.")
            st.stop()
        email_id = st.selectbox("Email (the first adapter's worst mistakes first; open any email from the Inbox)",
                                options, format_func=lambda i: labels.get(i, i), key="explain_email",
                                index=options.index(query["email"]) if query.get("email") in options else 0)
        mail, _ = email_with_verdicts(settings.store_path, email_id)
        if mail is None:
            st.error(f"No email {email_id!r} in the store.")
            st.stop()
    else:
        pasted = st.text_area("Paste raw text or a full RFC822 message", height=160, key="explain_text")
        if not pasted.strip():
            st.stop()
        try:
            fields, truncated = parse_pasted_text(pasted, settings.parse_limits)
        except ParseError as exc:
            st.error(f"Could not read this email: {exc}")
            st.stop()
        mail = make_email(fields, USER_CORPUS, label=1, source_ref="pasted", lowercase=settings.lowercase,
                          truncated=truncated)

st.query_params.update({"email": mail.id if source == "from the store" else "", "adapters": picked,
                        "method": method, "delta": "1" if show_delta else "0", "source": "paste" if source == "paste" else "store"})
if not picked:
    st.info("Pick at least one adapter.")
    st.stop()


_drawn: dict[str, int] = {}


def draw(explanation, title: str, key: str, scale: float | None = None) -> None:
    """One explanation: verdict line, legend, map, field waterfall and faithfulness curves.

    A progressive map is redrawn in place; each drawing gets element keys of its own.
    """
    _drawn[key] = _drawn.get(key, 0) + 1
    key = f"{key}_{_drawn[key]}"
    verdict = "phishing/spam" if explanation.score > 0 else "legitimate"
    level = LEVEL_NOTE.get(explanation.level, explanation.level)
    st.markdown(f"**{title}** · {verdict} (score {explanation.score:+.3f}) · map by {level} · "
                f"{explanation.evaluations} model evaluations, {explanation.seconds:.1f} s")
    scale = scale or max((abs(v) for v in explanation.values), default=0.0)
    st.html(legend_html(scale))
    st.html(token_map_html(explanation, scale))
    charts = st.columns(2)
    charts[0].plotly_chart(field_waterfall(field_totals(explanation), explanation.base_value, explanation.score),
                           key=f"{key}_waterfall")
    if explanation.faithfulness is not None:
        charts[1].plotly_chart(faithfulness_figure(explanation.faithfulness), key=f"{key}_faithfulness")


def explained(loaded, key: str):
    """The cached explanation of `mail` by `loaded`, or a new one drawn as it refines (then cached)."""
    params = method_params(method, settings.max_tokens, settings.seed)
    cached = stored_explanation(settings.store_path, loaded.adapter_id, mail.id, method, params)
    slot = st.empty()
    if cached is not None and cached.faithfulness is not None:
        with slot.container():
            draw(cached, f"{loaded.adapter_id} (cached)", key)
        return cached
    with model_lock():
        layout = layout_email(PromptBuilder(loaded.tokenizer, loaded.spec, settings.max_tokens), mail)
        if cached is not None:  # from a corpus sweep: only the curves are missing
            final = with_faithfulness_curves(CoalitionScorer(loaded, layout), cached, settings.seed)
        elif method == "gradxinput":
            with st.spinner("Gradient × input…"):
                first = explain_gradient(loaded, layout, mail.id, settings.max_tokens)
            with slot.container():
                draw(first, loaded.adapter_id, key)
            with st.spinner("Faithfulness curves…"):
                final = with_faithfulness_curves(CoalitionScorer(loaded, layout), first, settings.seed)
        else:
            final = None
            with st.spinner("Explaining: fields first, then sentences, then words…"):
                for final in explain_progressively(loaded, mail, settings.max_tokens, seed=settings.seed):
                    with slot.container():
                        draw(final, loaded.adapter_id, key)
    with slot.container():
        draw(final, loaded.adapter_id, key)
    if source == "from the store":
        problem = save_explanation(settings.store_path, final, mail.corpus)
        if problem:
            st.caption(f"Not cached: {problem}")
    return final


for name in picked:
    record = by_name[name]
    loaded = classifier(record["model"] if record else settings.model, record["path"] if record else None,
                        str(settings.models_dir), settings.device)
    st.divider()
    st.subheader(name)
    adapted = explained(loaded, f"explain_{name}")
    if show_delta and record is not None:
        st.caption("The base model with the adapter switched off, then the difference: what fine-tuning changed.")
        with adapter_disabled(loaded) as base_view:
            base = explained(base_view, f"explain_{name}_base")
        delta = lora_delta(adapted, base)
        draw(delta, f"LoRA delta: {name} minus base", f"explain_{name}_delta")

if source == "from the store":
    _, verdicts = email_with_verdicts(settings.store_path, mail.id)
    with st.expander("Stored verdicts of every adapter"):
        st.dataframe(pd.DataFrame(verdicts), hide_index=True, key="explain_verdicts")
