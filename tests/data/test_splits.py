import pandas as pd
import pytest

from data.corpora import ingest_emails
from data.splits import (
    SplitError,
    build_generalist,
    build_specialist,
    split_corpus,
    stratified_split,
    test_sample as sample_test_split,
)


def test_stratified_split_keeps_proportions_and_is_seeded():
    frame = pd.DataFrame({"id": [f"e{i}" for i in range(1000)], "label": [i % 4 == 0 for i in range(1000)]})
    a = stratified_split(frame, 0.2, seed=1)
    b = stratified_split(frame, 0.2, seed=1)
    c = stratified_split(frame, 0.2, seed=2)
    assert a == b and a != c
    test = frame[frame["id"].map(a) == "test"]
    assert len(test) == 200
    assert test["label"].sum() == 50  # 25% positives, as in the whole


@pytest.fixture
def three_corpora(store, synthetic_emails):
    for info, emails in synthetic_emails:
        ingest_emails(store, info, emails, lowercase=False)
        split_corpus(store, info.name, 0.25, seed=5)
    return [info.name for info, _ in synthetic_emails]


def test_specialist_and_generalist_sets_have_no_test_leakage(store, three_corpora):
    build_specialist(store, three_corpora[0], size=30, seed=1)
    build_generalist(store, three_corpora, size=60, seed=1)
    assert store.leaked_test_emails() == 0
    general = store.training_set_emails("generalist")
    assert len(general) == 60
    assert sum(m.label for m in general) == 30  # label-balanced
    per_corpus = pd.Series([m.corpus for m in general]).value_counts()
    assert set(per_corpus.index) == set(three_corpora) and per_corpus.max() - per_corpus.min() <= 2
    special = store.training_set_emails(f"specialist-{three_corpora[0]}")
    assert len(special) == 30 and {m.corpus for m in special} == {three_corpora[0]}
    test_ids = set(store.split_ids(three_corpora[0], "test")["id"])
    assert not test_ids & {m.id for m in special + general}


def test_one_class_corpus_cannot_be_a_specialist(store, synthetic_emails):
    from dataclasses import replace

    info, emails = synthetic_emails[0]
    ingest_emails(store, replace(info, name="only-phish"), [replace(m, corpus="only-phish") for m in emails if m.label == 1], False)
    split_corpus(store, "only-phish")
    with pytest.raises(SplitError, match="one class only"):
        build_specialist(store, "only-phish")


def test_generalist_too_large_is_a_clear_error(store, three_corpora):
    with pytest.raises(SplitError, match="cannot build a generalist set"):
        build_generalist(store, three_corpora, size=10_000)


def test_test_sample_is_stratified_and_seeded(store, three_corpora):
    a = sample_test_split(store, three_corpora[0], 10, seed=3)
    assert a == sample_test_split(store, three_corpora[0], 10, seed=3)
    assert len(a) == 10
