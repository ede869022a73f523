"""Fingerprint masking on a planted case: a scorer that calls phishing on a corpus' signature word
loses its F1 there when the corpus' fingerprints are masked (the paired interval excludes 0), an
unaffected corpus keeps it, and the job stores per-corpus rows and the gap before and after."""

from dataclasses import replace

import numpy as np
import pytest

from data.synthetic import generate_synthetic_corpora
from diagnostics.analyses.fingerprint import top_fingerprints
from diagnostics.analyses.fingerprint_masking import masked, masking_grid


@pytest.fixture(scope="module")
def planted():
    """Corporate phishing signed 'Zorbpay'; webmail as it is."""
    corpora = generate_synthetic_corpora(per_corpus=80, seed=2)
    corporate = [replace(m, body=m.body + "\nZorbpay") if m.label else m for m in corpora[0][1]]
    return corporate + corpora[1][1]


def _scores(emails):
    """Planted scorer: phishing where the word Zorbpay is, or where webmail phishing templates say 'verify'."""
    return np.array([3.0 if "Zorbpay" in m.body or (m.corpus == "synthetic-webmail" and m.label) else -3.0
                     for m in emails])


def test_masking_a_corpus_fingerprint_removes_the_f1_it_carried(planted):
    words = top_fingerprints(planted, 10)
    assert "Zorbpay" in words["synthetic-corporate"]
    changed = [masked(m, words.get(m.corpus, [])) for m in planted]
    assert not any("Zorbpay" in m.body for m in changed)
    grid = masking_grid(planted, _scores(planted), _scores(changed), {"synthetic-corporate"}).set_index(
        ["row", "column"])
    corporate = "synthetic-corporate (in domain)"
    assert grid.loc[(corporate, "F1"), "value"] == pytest.approx(1.0)
    assert grid.loc[(corporate, "ΔF1 (masked − original)"), "high"] < 0  # a real loss, interval excludes 0
    webmail = "synthetic-webmail (out of domain)"
    assert grid.loc[(webmail, "ΔF1 (masked − original)"), "value"] == pytest.approx(0.0)
    assert grid.loc[("in − out of domain", "gap masked"), "value"] < grid.loc[("in − out of domain", "gap"), "value"]


def test_masking_removes_whole_words_only():
    from data.records import Email

    mail = Email("x", "c", "Zorbpay news", "Zorbpayments and Zorbpay.", 1, "a@Zorbpay.test")
    out = masked(mail, ["Zorbpay"])
    assert out.subject == " news" and out.body == "Zorbpayments and ." and out.sender == "a@.test"
    assert masked(mail, []) is mail


def test_the_job_stores_every_corpus_and_the_gap(evaluated_copy):
    from data.records import DiagnosticRequest, EvaluationTarget
    from data.store import Store
    from diagnostics.runners.local import LocalExecutor, run_job
    from diagnostics.contracts.registry import diagnostic

    settings = evaluated_copy
    entry = diagnostic("fingerprint-masking")
    with Store.open(settings.store_path) as store:
        folder = store.adapters().set_index("training_set").loc["specialist-synthetic-corporate", "path"]
        request = DiagnosticRequest(EvaluationTarget(settings.model, folder), "", 12, 96, 1, 8)
        assert run_job(store, entry.make_job(request, settings.models_dir), LocalExecutor(settings.models_dir, "cpu"),
                       progress=False).run_id
        result = store.diagnostic_results(entry.name).iloc[0]
        grid = store.diagnostic_values(entry.name, result["adapter_id"], result["params"])
    rows = set(grid["row"])
    assert "synthetic-corporate (in domain)" in rows and "synthetic-webmail (out of domain)" in rows
    assert {"gap", "gap masked"} <= set(grid[grid["row"] == "in − out of domain"]["column"])
