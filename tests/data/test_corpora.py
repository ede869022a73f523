"""Ingest of the real corpora: counts against SOURCES.md, dedupe, label meanings."""

import pytest

from data.corpora import IngestError, discover_corpora, ingest_emails, source_for_path


def test_discovery_finds_every_corpus_and_skips_parser_samples(shared_data):
    found = {s.name: s.format for s in discover_corpora(shared_data)}
    assert found == {"EnronSpam": "csv", "LingSpam": "csv", "Nazario": "csv", "SpamAssassin": "mbox"}


def test_source_for_path_rejects_unknown_files(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(IngestError, match="expected a .csv"):
        source_for_path(tmp_path / "notes.txt")
    with pytest.raises(IngestError, match="does not exist"):
        source_for_path(tmp_path / "missing.csv")


def test_real_corpora_ingest_counts(real_store):
    corpora = real_store.query("SELECT * FROM corpora ORDER BY name").set_index("name")
    # Raw message counts from shared/data/SOURCES.md: every row and message is parsed.
    assert corpora.loc["Nazario", "parsed"] == 1563
    assert corpora.loc["EnronSpam", "parsed"] == 33715
    assert corpora.loc["LingSpam", "parsed"] == 2893
    assert corpora.loc["SpamAssassin", "parsed"] == 6046
    assert (corpora["parse_errors"] == 0).all()
    for name, row in corpora.iterrows():
        assert row["kept"] + row["duplicates_within"] + row["label_conflicts"] + row["duplicates_across"] == row["parsed"], name
    # Enron-Spam has thousands of exact duplicate bodies (SOURCES.md: 3,935)
    assert corpora.loc["EnronSpam", "duplicates_within"] > 3000
    assert corpora.loc["Nazario", "label_meaning"] == "phishing"
    assert set(corpora.drop(index="Nazario")["label_meaning"]) == {"spam"}
    stored = real_store.query("SELECT corpus, count(*) AS n FROM emails GROUP BY corpus").set_index("corpus")["n"]
    assert stored.sort_index().to_dict() == corpora["kept"].sort_index().to_dict()
    labels = real_store.query("SELECT corpus, label, count(*) AS n FROM emails GROUP BY ALL")
    assert set(labels.loc[labels["corpus"] == "Nazario", "label"]) == {1}


def test_ids_unique_across_corpora_and_splits_cover_all(real_store):
    dup = real_store.query("SELECT count(*) - count(DISTINCT id) AS d FROM emails")["d"][0]
    assert dup == 0
    split = real_store.query("SELECT count(*) AS n FROM splits")["n"][0]
    assert split == real_store.query("SELECT count(*) AS n FROM emails")["n"][0]


def test_dedupe_keeps_the_first_copy_and_drops_label_conflicts(store, synthetic_emails, monkeypatch):
    from dataclasses import replace

    import data.corpora

    monkeypatch.setattr(data.corpora, "INGEST_BATCH", 7)  # duplicates and conflicts span batches
    info, emails = synthetic_emails[0]
    twin = replace(emails[0], label=1 - emails[0].label)
    later_copy = replace(emails[1], source_ref="a later copy")
    report = ingest_emails(store, info, [*emails, ("broken.eml", "no headers"), later_copy, twin], lowercase=False)
    assert (report.parsed, report.duplicates_within, report.label_conflicts) == (len(emails) + 2, 2, 1)
    assert (report.parse_errors, report.errors) == (1, (("broken.eml", "no headers"),))
    assert report.kept == len(emails) - 1
    stored = store.query("SELECT id, source_ref FROM emails").set_index("id")["source_ref"]
    assert emails[0].id not in stored.index and stored[emails[1].id] == emails[1].source_ref
    assert store.query("SELECT source_ref FROM ingest_errors")["source_ref"].tolist() == ["broken.eml"]
    assert not list(store.path.parent.glob("phishlens-ingest-*"))  # the staging file is gone


def test_a_failed_ingest_leaves_nothing_behind(store, synthetic_emails):
    info, emails = synthetic_emails[0]

    def parse_then_fail():
        yield from emails[:10]
        raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        ingest_emails(store, info, parse_then_fail(), lowercase=False)
    assert not store.has_corpus(info.name) and store.scalar("SELECT count(*) FROM emails") == 0
    assert not list(store.path.parent.glob("phishlens-ingest-*"))


def test_cross_corpus_duplicates_dropped_and_counted(store, synthetic_emails):
    from dataclasses import replace

    (info_a, a), (info_b, b) = synthetic_emails[:2]
    ingest_emails(store, info_a, a, lowercase=False)
    copies = [replace(m, corpus=info_b.name) for m in a[:5]]
    report = ingest_emails(store, info_b, [*b, *copies], lowercase=False)
    assert report.duplicates_across == 5
    assert report.kept == len(b)
    with pytest.raises(IngestError, match="already in the store"):
        ingest_emails(store, info_a, a, lowercase=False)
