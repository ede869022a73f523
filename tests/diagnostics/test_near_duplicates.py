"""Near-duplicates: an edited copy of a real email found while other emails of its class are not,
planted pairs found in the synthetic corpora, F1 without leaked emails on a hand-made table, the
matrix view that leaves them out, and training sets built without them."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from data.synthetic import CORPUS_STYLES, generate_synthetic_corpora, synthetic_truth
from diagnostics.analyses.near_duplicates import leakage_table, near_duplicate_pairs, shingles


@pytest.fixture(scope="module")
def nazario(shared_data):
    from data.corpora import discover_corpora, read_corpus
    from data.records import Email

    source = next(s for s in discover_corpora(shared_data) if s.name == "Nazario")
    return list(itertools.islice((m for m in read_corpus(source, lowercase=False, progress=False)
                                  if isinstance(m, Email)), 200))


def _edited(mail, corpus: str):
    """A forwarded copy: "Fw:", a greeting changed, spacing and case changed, another corpus."""
    words = mail.body.split()
    words[min(3, len(words) - 1)] = "Kindly"
    body = ("Fw: see below\n\n" + " ".join(words)).upper()
    return replace(mail, id=mail.id + "-copy", corpus=corpus, subject="Fw: " + mail.subject, body=body)


def test_an_edited_copy_of_a_real_phishing_email_is_found_and_its_class_mates_are_not(nazario):
    original = next(m for m in nazario if len(shingles(m.body)) > 60)
    copy = _edited(original, "elsewhere")
    pairs = near_duplicate_pairs([*nazario, copy])
    with_copy = pairs[(pairs["email_a"] == copy.id) | (pairs["email_b"] == copy.id)]
    partners = set(with_copy["email_a"]) | set(with_copy["email_b"])
    assert partners == {copy.id, original.id}, with_copy
    # Its 199 class mates (Nazario phishing, many of them the same kind of lure) are not near-duplicates of it.
    assert len(with_copy) == 1


def test_planted_near_duplicates_are_found_and_no_pair_joins_different_styles():
    emails = list({m.id: m for _, ms in generate_synthetic_corpora(240) for m in ms}.values())
    truth = synthetic_truth(240)
    refs = {m.id: m.source_ref for m in emails}
    pairs = near_duplicate_pairs(emails)
    found = {frozenset((refs[a], refs[b])) for a, b in zip(pairs["email_a"], pairs["email_b"])}
    planted = {frozenset(p) for p in truth.near_duplicates}
    recall = len(found & planted) / len(planted)
    assert recall >= 0.6, recall  # measured: 7 of 10 (the edits of the shortest templates fall under 0.7)
    styles = [{truth.styles[r] for r in pair} for pair in found]
    assert all(len(s) == 1 for s in styles)  # every pair found shares one template: precision 1 on templates
    # The corporate and webmail corpora share no writing style: every pair joining them was planted.
    assert not set(CORPUS_STYLES["synthetic-corporate"][0]) & set(CORPUS_STYLES["synthetic-webmail"][0])
    across = {p for p in found if {r.split("#")[0] for r in p} == {"synthetic-corporate", "synthetic-webmail"}}
    assert across <= planted and across
    unplanted = list({m.id: m for _, ms in generate_synthetic_corpora(240, planted=False) for m in ms}.values())
    bare = near_duplicate_pairs(unplanted)
    assert not ((bare["corpus_a"] != bare["corpus_b"]) &
                bare["corpus_a"].isin(["synthetic-corporate", "synthetic-webmail"]) &
                bare["corpus_b"].isin(["synthetic-corporate", "synthetic-webmail"])).any()


def test_f1_without_leaked_emails_on_a_hand_made_table():
    # Cell A: 6 emails, 2 leaked (both true positives). All: tp 3, fp 1, fn 1 → F1 = 6/8.
    # Without the leaked: tp 1, fp 1, fn 1 → F1 = 2/4.
    rows = pd.DataFrame({
        "adapter_id": ["a"] * 6 + ["b"] * 3, "corpus": ["X"] * 6 + ["Y"] * 3,
        "predicted": [1, 1, 1, 1, 0, 0, 1, 0, 0], "true_label": [1, 1, 1, 0, 1, 0, 1, 0, 0],
        "leaked": [True, True, False, False, False, False, False, False, False]})
    table = leakage_table(rows).set_index("adapter_id")
    assert table.loc["a", "f1"] == pytest.approx(6 / 8) and table.loc["a", "f1_without"] == pytest.approx(0.5)
    assert table.loc["a", "share"] == pytest.approx(2 / 6) and table.loc["a", "delta_f1"] == pytest.approx(-0.25)
    assert table.loc["b", "near_duplicates"] == 0 and table.loc["b", "f1"] == table.loc["b", "f1_without"] == 1.0


def test_the_stored_audit_moves_the_matrix_as_the_leakage_table_says(evaluated_copy, tmp_path):
    from data.splits import build_generalist
    from data.store import Store
    from diagnostics.analyses.near_duplicates import leakage_by_cell, near_duplicates_of_test_emails
    from diagnostics.contracts.registry import diagnostic
    from diagnostics.runners.local import LocalExecutor, run_job

    with Store.open(evaluated_copy.store_path) as store:
        run_job(store, diagnostic("near-duplicates").make_job(None, evaluated_copy.models_dir),
                LocalExecutor(evaluated_copy.models_dir), progress=False)
        summary = store.flag_summaries("near-duplicates").set_index("corpus")
        assert summary.loc["synthetic-webmail", "flagged"] >= 1  # the planted copies of corporate mail
        leakage = leakage_by_cell(store).set_index(["adapter_id", "corpus"])
        viewed = store.metrics("without near-duplicates").set_index(["adapter_id", "corpus"])
        original = store.metrics().set_index(["adapter_id", "corpus"])
        for cell, row in leakage.iterrows():
            assert viewed.loc[cell, "n"] == row["n"] - row["near_duplicates"]
            if not np.isnan(row["f1_without"]):
                assert viewed.loc[cell, "f1"] == pytest.approx(row["f1_without"])
            assert original.loc[cell, "n"] == row["n"]
        zero_shot = [c for c in leakage.index if c[0].startswith("zero-shot")]
        assert zero_shot and all(leakage.loc[c, "near_duplicates"] == 0 for c in zero_shot)  # trained on nothing
        corpora = store.training_corpora()
        left_out = near_duplicates_of_test_emails(store, corpora)
        build_generalist(store, corpora, 40, 13, "generalist-clean", exclude=frozenset(left_out))
        kept = {m.id for m in store.training_set_emails("generalist-clean")}
        assert not kept & left_out
