"""Corpus-level drivers: feature names, SQL aggregation, the shortcut finder on a planted
signature line, and a resumable sweep with a real (tiny) model."""

import numpy as np
import pandas as pd
import pytest

from data.normalise import content_hash
from data.records import CorpusInfo, Email, Explanation, IngestReport
from diagnostics.analyses.drivers import ShortcutRule, explain_sample, feature_of, features, shortcut_candidates

SIGNATURE = "Sent from ZorbMail Pro -- the mail of champions."


def _corpus(store, name: str, n: int, rng, signature: bool) -> list[Email]:
    emails = []
    for i in range(n):
        label = i % 2
        body = ("Please verify your account password now at our portal." if label else
                "Minutes of the weekly meeting are attached, see agenda item three.")
        body += f" Ref {name} {i} {rng.integers(1_000_000)}."
        if signature:
            body += "\n" + SIGNATURE
        subject = f"message {i}"
        emails.append(Email(id=content_hash(subject, body), corpus=name, subject=subject, body=body, label=label,
                            sender=f"user{i}@{name}.test"))
    info = CorpusInfo(name, "constructed", "synthetic", "phishing", "constructed for a test", synthetic=True)
    store.add_corpus(info, IngestReport(name, n, 0, 0, 0, 0, n, "ws1"), emails)
    return emails


def _constructed_explanation(mail: Email, values: dict[str, float]) -> Explanation:
    """A word-level explanation of `mail` whose values are given per feature (others 0)."""
    import re

    text = f"From: {mail.sender}\nSubject: {mail.subject}\n\n{mail.body}"
    spans = tuple((m.start(), m.end()) for m in re.finditer(r"\S+", text))
    vals = tuple(values.get(feature_of(text[s:e]), 0.0) for s, e in spans)
    return Explanation("specialist", mail.id, "shap", "word", "{}", text, spans, tuple("body" for _ in spans), vals,
                       0.0, sum(vals), 0, 0.0)


def test_feature_names_strip_edge_punctuation_and_case():
    assert feature_of("Verify!") == "verify" and feature_of("(ZorbMail)") == "zorbmail"
    assert feature_of("e-mail,") == "e-mail" and feature_of("--") == ""


def test_shortcut_finder_flags_a_planted_signature_not_a_phishing_word(store):
    rng = np.random.default_rng(0)
    planted = _corpus(store, "corpus-a", 40, rng, signature=True)
    _corpus(store, "corpus-b", 40, rng, signature=False)
    _corpus(store, "corpus-c", 40, rng, signature=False)
    # What a specialist trained on corpus-a would rely on: its signature (both labels) and a real cue.
    for mail in planted:
        explanation = _constructed_explanation(mail, {"zorbmail": 0.9, "champions": 0.4, "verify": 0.6 * mail.label,
                                                      "meeting": -0.5 * (1 - mail.label)})
        store.add_explanation(explanation, mail.corpus, features(explanation))

    drivers = store.drivers("specialist", "shap", "{}")
    top = drivers.set_index("feature")
    assert top.loc["zorbmail", "emails"] == 40 and top.loc["zorbmail", "total"] == pytest.approx(36.0)
    assert top.loc["verify", "mean_value"] == pytest.approx(0.6 * 20 / 40)
    shares = store.feature_document_frequency(list(drivers["feature"].head(10)))
    assert shares.set_index(["feature", "corpus"]).loc[("zorbmail", "corpus-a"), "share"] == 1.0
    assert shares.set_index(["feature", "corpus"]).loc[("verify", "corpus-b"), "share"] == 0.5
    found = shortcut_candidates(drivers, shares, ShortcutRule(top=10)).set_index("feature")
    assert found.loc["zorbmail", "shortcut"] and found.loc["zorbmail", "corpus"] == "corpus-a"
    assert found.loc["champions", "shortcut"]
    assert not found.loc["verify", "shortcut"] and not found.loc["meeting", "shortcut"]


def test_explain_sample_is_resumable_and_stores_features(evaluated_settings):
    from data.records import EvaluationTarget
    from data.store import Store
    from diagnostics.runners.local import LocalExecutor

    base = EvaluationTarget(evaluated_settings.model)
    here = LocalExecutor(evaluated_settings.models_dir, "cpu")
    seen = []
    with Store.open(evaluated_settings.store_path) as store:
        first = explain_sample(store, base, "synthetic-listdump", size=4, method="shap", max_tokens=96, seed=1,
                               executor=here, on_email=lambda done, total: seen.append((done, total)))
        again = explain_sample(store, base, "synthetic-listdump", size=4, method="shap", max_tokens=96, seed=1,
                               executor=here)
        sweeps = store.explanation_sweeps()
    assert (first, again) == (4, 0)
    assert seen[0] == (0, 4) and seen[-1] == (4, 4)
    row = sweeps[(sweeps["corpus"] == "synthetic-listdump") & (sweeps["method"] == "shap")]
    assert row["emails"].tolist() == [4]


def test_explanation_shift_ranks_features_by_how_much_their_attribution_changed():
    from diagnostics.analyses.drivers import explanation_shift

    in_domain = pd.DataFrame({"feature": ["zorbmail", "verify", "meeting"], "emails": [9, 5, 4],
                              "mean_value": [0.80, 0.30, -0.20]})
    out_of_domain = pd.DataFrame({"feature": ["verify", "meeting", "invoice"], "emails": [6, 3, 2],
                                  "mean_value": [0.25, -0.60, 0.10]})
    shift = explanation_shift(in_domain, out_of_domain).set_index("feature")
    assert list(shift.index) == ["zorbmail", "meeting", "invoice", "verify"]
    assert shift.loc["zorbmail", "change"] == pytest.approx(-0.80)  # gone out of domain: 0 there
    assert shift.loc["zorbmail", "emails_second"] == 0 and shift.loc["invoice", "emails_first"] == 0
    assert shift.loc["meeting", "change"] == pytest.approx(-0.40)
    assert len(explanation_shift(in_domain, out_of_domain, top=2)) == 2


def test_a_url_feature_is_its_host_in_python_and_in_sql(store):
    words = ["http://zorbpay-secure.test/verify?id=1234", "(www.Example.test/a).", "https://user@Host.Test:8080/p"]
    assert [feature_of(w) for w in words] == ["zorbpay-secure.test", "www.example.test", "host.test"]
    emails = []
    for i in range(10):
        body = f"Pay now at http://zorbpay-secure.test/verify?id={1000 + i} today" if i % 2 else "See (www.Example.test/a)."
        emails.append(Email(id=content_hash(f"s{i}", body), corpus="links", subject=f"s{i}", body=body, label=i % 2))
    info = CorpusInfo("links", "constructed", "synthetic", "phishing", "constructed for a test", synthetic=True)
    store.add_corpus(info, IngestReport("links", 10, 0, 0, 0, 0, 10, "ws1"), emails)
    shares = store.feature_document_frequency(["zorbpay-secure.test", "www.example.test", "today"])
    shares = shares[shares["corpus"] == "links"].set_index("feature")["share"]
    assert shares.to_dict() == {"today": 0.5, "www.example.test": 0.5, "zorbpay-secure.test": 0.5}
