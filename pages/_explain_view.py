"""Shared by the Explain and Compare pages: picking an email, explaining it (cached in the
store, progressive when new) and drawing an explanation. Streamlit only; the work is in
diagnostics.attribution."""

from __future__ import annotations

import streamlit as st

from data.corpora import USER_CORPUS
from data.parse import ParseError, make_email, parse_pasted_text
from data.records import Email, Explanation, label_name
from data.records import verdict as verdict_of
from diagnostics.analyses.comparison import field_totals
from diagnostics.analyses.explainers import EXPLAINERS, NothingToExplain, explanation_passes, method_params
from pages._cache import (email_with_verdicts, explainer_warm_up, misclassified_examples, model_lock, save_explanation,
                          stored_explanation)
from pages._charts import faithfulness_figure, field_waterfall
from pages._safe import MAX_PASTE_CHARS, PASTE_HELP, md
from pages._token_map import legend_html, token_map_html

METHOD_NAMES = {name: entry.title for name, entry in EXPLAINERS.items()}  # the explainer registry
METHOD_TITLES = {name: entry.short_title for name, entry in EXPLAINERS.items()}
LEVEL_NOTE = {"field": "fields (first pass)", "sentence": "sentences (refining…)", "word": "words"}


def pick_method(key: str) -> str:
    wanted = st.query_params.get("method")
    return st.radio("Method", list(METHOD_NAMES), format_func=METHOD_NAMES.get, key=key,
                    index=list(METHOD_NAMES).index(wanted) if wanted in METHOD_NAMES else 0)


def pick_email(settings, key: str, adapter_id: str | None) -> tuple[Email, bool]:
    """The email to explain and whether it is from the store; stops the page until there is one.

    Store emails are listed worst mistakes of `adapter_id` first; ?email=<id> preselects one.
    """
    query = st.query_params
    source = st.radio("Email", ["from the store", "paste"], horizontal=True, key=f"{key}_source",
                      index=1 if query.get("source") == "paste" else 0)
    if source == "paste":
        pasted = st.text_area("Paste raw text or a full RFC822 message", height=160, key=f"{key}_text",
                              max_chars=MAX_PASTE_CHARS, help=PASTE_HELP)
        if not pasted.strip():
            st.stop()
        if len(pasted) >= MAX_PASTE_CHARS:  # the box keeps the first MAX_PASTE_CHARS characters
            st.warning(f"The paste filled the box's {MAX_PASTE_CHARS:,} characters, so anything after them was "
                       f"cut: analyze a larger message by uploading it on the Analyze page.")
        try:
            fields, truncated = parse_pasted_text(pasted, settings.parse_limits)
        except ParseError as exc:
            st.error(f"Could not read this email: {md(exc)}")
            st.stop()
        return make_email(fields, USER_CORPUS, label=1, source_ref="pasted", lowercase=settings.lowercase,
                          truncated=truncated), False
    examples = misclassified_examples(settings.store_path, adapter_id)
    labels = {r["id"]: f"{r['subject'][:70] or '(no subject)'} · {r['corpus']}" for r in examples.to_dict("records")}
    options = list(labels)
    wanted = query.get("email")
    if wanted and wanted not in labels:
        options.insert(0, wanted)
        linked, _ = email_with_verdicts(settings.store_path, wanted)
        if linked is not None:
            labels[wanted] = f"{linked.subject[:70] or '(no subject)'} · {linked.corpus}"
    if not options:
        st.info("No emails in the store yet.")
        st.stop()
    email_id = st.selectbox("Email (worst mistakes first; open any email from the Inbox)", options,
                            format_func=lambda i: labels.get(i, i), key=f"{key}_email",
                            index=options.index(wanted) if wanted in options else 0)
    mail, _ = email_with_verdicts(settings.store_path, email_id)
    if mail is None:
        st.error(f"No email {md(email_id, 80)} in the store: open one from the Inbox.")
        st.stop()
    return mail, True


class ExplanationView:
    """Draws explanations; a map redrawn in place (progressive passes) gets fresh element keys."""

    def __init__(self, settings):
        self.settings = settings
        self._drawn: dict[str, int] = {}

    def draw(self, explanation: Explanation, title: str, key: str, scale: float | None = None,
             charts: bool = True) -> None:
        """Verdict line, legend, map; with charts, the field waterfall and faithfulness curves.
        `title` is Markdown: escape any name in it with pages._safe.md."""
        self._drawn[key] = self._drawn.get(key, 0) + 1
        key = f"{key}_{self._drawn[key]}"
        verdict = label_name(verdict_of(explanation.score))
        level = LEVEL_NOTE.get(explanation.level, explanation.level)
        st.markdown(f"**{title}** · {verdict} (score {explanation.score:+.3f}) · map by {level} · "
                    f"{explanation.evaluations} model evaluations, {explanation.seconds:.1f} s")
        scale = scale or max((abs(v) for v in explanation.values), default=0.0)
        st.html(legend_html(scale))
        st.html(token_map_html(explanation, scale))
        if charts:
            left, right = st.columns(2)
            left.plotly_chart(field_waterfall(field_totals(explanation), explanation.base_value, explanation.score),
                              key=f"{key}_waterfall")
            if explanation.faithfulness is not None:
                right.plotly_chart(faithfulness_figure(explanation.faithfulness), key=f"{key}_faithfulness")

    def explained(self, loaded, mail: Email, method: str, key: str, save: bool,
                  charts: bool = True) -> Explanation | None:
        """The cached explanation of `mail` by `loaded`, or a new one drawn as it refines (then cached).

        None (and a note on the page) when the email has nothing to explain.
        """
        settings = self.settings
        params = method_params(method, settings.max_tokens, settings.seed)
        cached = stored_explanation(settings.store_path, loaded.adapter_id, mail.id, method, params)
        slot = st.empty()
        if cached is not None and cached.faithfulness is not None:
            with slot.container():
                self.draw(cached, f"{METHOD_TITLES[method]} (cached)", key, charts=charts)
            return cached
        explainer_warm_up().join()
        final = None
        note = ("Explaining: fields first, then sentences, then words…" if EXPLAINERS[method].progressive
                else f"{METHOD_TITLES[method]}, then its faithfulness curves…")
        try:
            with model_lock(), st.spinner(note):
                for final in explanation_passes(loaded, mail, method, settings.max_tokens, settings.seed, cached):
                    with slot.container():
                        self.draw(final, METHOD_TITLES[method], key, charts=charts)
        except NothingToExplain:
            st.info("Nothing to explain: this email has no words (empty sender, subject and body).")
            return None
        if save:
            problem = save_explanation(settings.store_path, final, mail.corpus)
            if problem:
                st.caption(f"Not cached: {md(problem)}")
        return final
