"""The TF-IDF + logistic regression reference: trained on the protocol's training sets, scored
on exactly the test emails the LLMs were scored on, stored as rows of the F1 matrix."""

import pytest

from data.store import Store
from diagnostics.analyses.evaluate import evaluate_reference
from models.bag_of_words import REFERENCE_MODEL, fit_reference, reference_id, score_reference


def test_reference_rows_score_the_same_emails_as_the_adapters(evaluated_settings):
    with Store.open(evaluated_settings.store_path) as store:
        metrics = store.metrics()
        reference = metrics[metrics["model"] == REFERENCE_MODEL]
        assert set(reference["training_set"]) == {"generalist", "specialist-synthetic-corporate"}
        assert set(reference["paradigm"]) == {"generalist", "specialist"}
        specialist = reference[reference["training_set"] == "specialist-synthetic-corporate"].set_index("corpus")
        assert specialist.loc["synthetic-corporate", "in_domain"]
        assert not specialist.loc["synthetic-webmail", "in_domain"]
        adapter = store.adapters().iloc[0]["id"]
        for training_set in ("generalist", "specialist-synthetic-corporate"):
            same = store.scalar(
                "SELECT count(*) = 0 FROM ((SELECT email_id FROM predictions WHERE adapter_id = ?) "
                "EXCEPT (SELECT email_id FROM predictions WHERE adapter_id = ?))",
                [adapter, reference_id(training_set, evaluated_settings.seed)])
            assert same, training_set
        before = store.scalar("SELECT count(*) FROM predictions")
        evaluate_reference(store, ["generalist"], store.corpus_names(), 20, evaluated_settings.seed)
        assert store.scalar("SELECT count(*) FROM predictions") == before  # already stored: nothing redone
        assert len(store.reference_models()) == 2


def test_reference_separates_real_spam_from_ham(shared_data):
    from data.corpora import discover_corpora, read_corpus
    from data.records import Email

    source = next(s for s in discover_corpora(shared_data) if s.name == "SpamAssassin")
    by_label: dict[int, list[Email]] = {0: [], 1: []}
    for mail in read_corpus(source, lowercase=False, progress=False):
        if isinstance(mail, Email) and len(by_label[mail.label]) < 80:
            by_label[mail.label].append(mail)
        if min(len(v) for v in by_label.values()) >= 80:
            break
    train = by_label[0][:60] + by_label[1][:60]
    test = by_label[0][60:] + by_label[1][60:]
    pipeline = fit_reference(train, seed=0)
    accuracy = ((score_reference(pipeline, test) > 0) == [m.label == 1 for m in test]).mean()
    assert accuracy >= 0.8, accuracy
    with pytest.raises(ValueError, match="both labels"):
        fit_reference(by_label[1], seed=0)
