"""Draws one email safely: text only, never its HTML, links defanged and never clickable.

Everything from an email goes through st.text / st.code / st.dataframe, which escape it;
nothing from an email is ever passed to st.markdown, st.html or an unsafe_allow_html.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from data.defang import defang_url, link_host
from data.records import LABEL_NAMES, LEGITIMATE, POSITIVE, Email


def label_name(label: int, meaning: str = LABEL_NAMES[POSITIVE]) -> str:
    """data.records' label names, with label 1 named as the corpus means it (phishing or spam)."""
    return meaning if label == POSITIVE else LABEL_NAMES[LEGITIMATE]


def label_text(status: dict | None, label: int) -> str:
    """The label as shown everywhere: the analysts' correction where there is one (the corpus' own
    beside it), and the label audit's suspicion (Store.label_status)."""
    if not status or status.get("original") is None:
        return label_name(label)
    text = label_name(status["original"])
    if status.get("corrected") is not None:
        text = (f"{label_name(status['corrected'])} (corrected by an analyst; the corpus says "
                f"{label_name(status['original'])}: {status['note']})")
    if status.get("suspect"):
        text += f" · suspected label error (P(label) = {status['suspect']['p_given_label']:.2f} out of sample)"
    return text


def shown_label(status: dict | None, label: int) -> int:
    """The label verdicts are judged against: the correction where there is one."""
    return status["corrected"] if status and status.get("corrected") is not None else label


def show_email(mail: Email, verdicts: pd.DataFrame | None = None, key: str = "email",
               label_known: bool = True, names: dict[str, str] | None = None, status: dict | None = None) -> None:
    """Headers, visible text, defanged URLs with their domains, and every scorer's verdict (`names`:
    scorer id → display name, data.scorers; `status`: Store.label_status, for a corrected label)."""
    header = pd.DataFrame({
        "field": ["From", "To", "Date", "Subject", "Corpus", "True label", "Id"],
        "value": [mail.sender, mail.receiver, mail.date, mail.subject, mail.corpus,
                  label_text(status, mail.label) if label_known else "unknown", mail.id],
    })
    st.dataframe(header, hide_index=True, key=f"{key}_headers")
    if mail.truncated:
        st.caption("The body was longer than the size cap and was cut at ingest (PHISHLENS_MAX_BODY_CHARS).")
    st.caption("Visible text (HTML parts reduced to text; nothing from the email is rendered or fetched)")
    st.code(mail.body or "(empty body)", language=None, wrap_lines=True)
    if mail.urls:
        st.caption("Links, defanged: not clickable, never fetched. The host is the one a browser would open "
                   "(punycode for an internationalised name); invisible characters show as ⟦U+XXXX⟧")
        hosts = [link_host(u) for u in mail.urls]
        st.dataframe(pd.DataFrame({"url": [defang_url(u) for u in mail.urls],
                                   "host a browser opens": [defang_url(h.host) for h in hosts],
                                   "look twice": ["; ".join(h.warnings) for h in hosts]}),
                     hide_index=True, key=f"{key}_urls")
    if verdicts is not None and len(verdicts):
        st.caption("Verdicts (score = logit(phishing) − logit(legitimate); > 0 means phishing/spam)")
        shown = verdicts.assign(verdict=verdicts["predicted"].map(LABEL_NAMES),
                                correct=verdicts["predicted"] == shown_label(status, mail.label))
        if names and "adapter_id" in shown:  # each scorer by its one display name (two seeds look alike otherwise)
            shown = shown.assign(scorer=[names.get(i, t) for i, t in zip(shown["adapter_id"], shown["training_set"])])
        columns = (["scorer"] if "scorer" in shown else []) + ["training_set", "model", "verdict", "score"] + \
            (["correct"] if label_known else []) + ["truncated_tokens", "adapter_id"]
        st.dataframe(shown[columns], hide_index=True, key=f"{key}_verdicts",
                     column_config={"truncated_tokens": "tokens cut"})
        cut = verdicts["truncated_tokens"].max()  # NaN: made before truncation was recorded
        if cut == cut and cut > 0:
            st.warning(f"The models read a truncated email: the last {cut} tokens were beyond the scoring "
                       f"token budget (PHISHLENS_MAX_TOKENS / --max-tokens) and were not seen.")
